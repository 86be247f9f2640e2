{
  "targets": [
    {
      "target_name": "pgbind_socket_io",
      "sources": ["socket_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        # Never unloaded: a worker thread that loaded it alone ends by unloading it, while libuv still
        # has the close callbacks of its handles to call.
        ["OS=='linux'", { "ldflags": ["-Wl,-z,nodelete"] }]
      ]
    }
  ]
}
