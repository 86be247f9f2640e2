{
  "targets": [
    {
      "target_name": "pgbind_socket_io",
      "sources": ["socket_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
