// The gateway's native socket layer: TCP connections accepted on a listening socket taken over from
// Node, or adopted from Node (by file descriptor), served by libuv handles on Node's own loop. Reads
// land in one arena and reach JavaScript as a single callback per loop iteration listing every
// accept, read, end, drain and close; writes are direct calls that try the kernel at once. Node's
// per-read C++ -> JS callback and per-write stream machinery are most of a relayed transaction's
// user-space CPU; this layer batches the first and skips the second. Protocol logic stays in
// JavaScript.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define ARENA_SIZE (2 * 1024 * 1024)
#define READ_SLICE (64 * 1024)
#define DEFAULT_MAX_EVENTS 16384
#define EVENT_INTS 4
#define DEFER_ACCEPT_SECONDS 45

// Event kinds, mirrored in native-sockets.ts.
enum { EV_DATA = 1, EV_END = 2, EV_DRAIN = 3, EV_CLOSE = 4, EV_ACCEPT = 5 };

typedef struct io_state io_state;

typedef struct conn {
  uv_tcp_t tcp;
  int32_t id;
  io_state* io;
  bool reading;
  bool closing;
  bool starved;  // stopped for want of arena space; restarted after the next flush
  bool quiet;    // JavaScript knows it is closed (it closed or released it): no close event
  bool listener;  // a listening socket: closes without a close event
} conn;

struct io_state {
  napi_env env;
  uv_loop_t* loop;
  char* arena;
  size_t used;
  int32_t* events;
  int nevents;
  int max_events;
  bool flushing;
  napi_ref callback;
  napi_async_context async;
  uv_check_t check;
  bool started;
  conn** conns;    // by id; NULL once closed
  uint8_t* taken;  // id in use until JavaScript has seen its close event
  int32_t capacity;
  int32_t next_hint;
  int32_t starved;  // how many connections wait for arena space
  bool closing;     // the environment is going away: no more calls into JavaScript
};

static void flush(io_state* io);

// Events wait for the end of the loop iteration, unless the list fills up first (thousands of
// connections active in one iteration): then they are delivered at once, from the libuv callback,
// as Node delivers every read. Callers account for arena bytes before pushing, since a flush frees it.
static void push_event(io_state* io, int32_t kind, int32_t id, int32_t a, int32_t b) {
  // JavaScript's calls into the layer push no events, so a flush never meets a full list.
  if (io->nevents >= io->max_events) abort();
  int32_t* e = io->events + EVENT_INTS * io->nevents++;
  e[0] = kind;
  e[1] = id;
  e[2] = a;
  e[3] = b;
  if (io->nevents == io->max_events) flush(io);
}

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

static void flush(io_state* io) {
  if (io->nevents == 0 || io->flushing || io->closing) return;
  io->flushing = true;
  napi_env env = io->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, global, argv[1], result;
  napi_get_reference_value(env, io->callback, &callback);
  napi_get_global(env, &global);
  int count = io->nevents;
  napi_create_int32(env, count, &argv[0]);
  napi_status status = napi_make_callback(env, io->async, global, callback, 1, argv, &result);
  if (status != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  io->nevents = 0;
  io->used = 0;
  io->flushing = false;
  napi_close_handle_scope(env, scope);
  // Connections that stopped reading for want of space read again now that the arena is free.
  for (int32_t id = 1; io->starved > 0 && id < io->capacity; id++) {
    conn* c = io->conns[id];
    if (c && c->starved) {
      c->starved = false;
      io->starved--;
      if (c->reading && !c->closing) uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
    }
  }
}

static void on_check(uv_check_t* check) { flush((io_state*)check->data); }

static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
  (void)suggested;
  conn* c = (conn*)handle->data;
  io_state* io = c->io;
  if (ARENA_SIZE - io->used < READ_SLICE) {
    // libuv answers a zero-length buffer with UV_ENOBUFS; on_read parks the connection.
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = io->arena + io->used;
  buf->len = READ_SLICE;
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  conn* c = (conn*)stream->data;
  io_state* io = c->io;
  if (nread > 0) {
    io->used += (size_t)nread;
    push_event(io, EV_DATA, c->id, (int32_t)(buf->base - io->arena), (int32_t)nread);
  } else if (nread == UV_ENOBUFS) {
    uv_read_stop(stream);
    c->starved = true;
    io->starved++;
  } else if (nread < 0) {
    uv_read_stop(stream);
    c->reading = false;
    push_event(io, EV_END, c->id, (int32_t)nread, 0);
  }
}

static void on_closed(uv_handle_t* handle) {
  conn* c = (conn*)handle->data;
  io_state* io = c->io;
  io->conns[c->id] = NULL;
  bool silent = c->quiet || c->listener || io->closing;
  int32_t id = c->id;
  free(c);
  if (silent) {
    io->taken[id] = 0;
    return;
  }
  // Closes finish after the loop's check phase; deliver at once rather than an iteration later (or
  // never, if this was the last handle keeping the loop alive).
  push_event(io, EV_CLOSE, id, 0, 0);
  flush(io);
}

static void unstarve(conn* c) {
  if (!c->starved) return;
  c->starved = false;
  c->io->starved--;
}

static void close_conn(conn* c) {
  if (c->closing) return;
  unstarve(c);
  c->closing = true;
  c->reading = false;
  uv_read_stop((uv_stream_t*)&c->tcp);
  uv_close((uv_handle_t*)&c->tcp, on_closed);
}

typedef struct {
  uv_write_t req;
  conn* c;
  char data[];
} write_req;

static void on_written(uv_write_t* req, int status) {
  write_req* w = (write_req*)req;
  conn* c = w->c;
  free(w);
  if (c->closing) return;
  if (status < 0 || c->tcp.write_queue_size == 0) push_event(c->io, EV_DRAIN, c->id, status, 0);
}

static void on_shutdown(uv_shutdown_t* req, int status) {
  (void)status;
  conn* c = (conn*)req->data;
  free(req);
  close_conn(c);
}

static int32_t take_id(io_state* io);

// Gives `c` an id, by which JavaScript names it.
static void register_conn(io_state* io, conn* c) {
  c->id = take_id(io);
  io->conns[c->id] = c;
  io->taken[c->id] = 1;
}

static void free_handle(uv_handle_t* handle) { free(handle->data); }

// The listener defers accepting until the client has spoken (TCP_DEFER_ACCEPT), so its first message
// is there when we accept: read it now, in the iteration that accepted, rather than one iteration later.
// Saves a loop iteration (and its latency) per connection, which counts when every transaction connects
// anew.
static void read_now(conn* c) {
  io_state* io = c->io;
  uv_os_fd_t fd;
  // (The accept event may have been delivered already, and JavaScript may have closed the connection.)
  if (c->closing || ARENA_SIZE - io->used < READ_SLICE || uv_fileno((uv_handle_t*)&c->tcp, &fd) != 0) return;
  ssize_t n = read(fd, io->arena + io->used, READ_SLICE);
  if (n > 0) {
    int32_t offset = (int32_t)io->used;
    io->used += (size_t)n;
    push_event(io, EV_DATA, c->id, offset, (int32_t)n);
  } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    // The error is reported once: report it as libuv would have.
    uv_read_stop((uv_stream_t*)&c->tcp);
    c->reading = false;
    push_event(io, EV_END, c->id, -errno, 0);
  }
  // Nothing yet, or end of stream (left unread): libuv's reading, already started, finds it.
}

static void on_connection(uv_stream_t* server, int status) {
  conn* l = (conn*)server->data;
  io_state* io = l->io;
  if (io->closing || l->closing) return;
  if (status < 0) {
    push_event(io, EV_ACCEPT, l->id, status, 0);
    return;
  }
  conn* c = calloc(1, sizeof(conn));
  if (!c) abort();
  uv_tcp_init(io->loop, &c->tcp);
  c->tcp.data = c;
  int rc = uv_accept((uv_stream_t*)&l->tcp, (uv_stream_t*)&c->tcp);
  if (rc < 0) {
    uv_close((uv_handle_t*)&c->tcp, free_handle);
    push_event(io, EV_ACCEPT, l->id, rc, 0);
    return;
  }
  // libuv accepts with SOCK_CLOEXEC: no child process inherits the connection.
  uv_tcp_nodelay(&c->tcp, 1);
  c->io = io;
  register_conn(io, c);
  c->reading = true;
  uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read);
  push_event(io, EV_ACCEPT, l->id, c->id, 0);
  read_now(c);
}

// A duplicate closed on exec, as Node's own sockets are: a child process (a restarted origin, a
// served backend) must not inherit client connections and hold them open.
static int duplicate(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

static io_state* state(napi_env env) {
  io_state* io = NULL;
  napi_get_instance_data(env, (void**)&io);
  return io;
}

static napi_value int_value(napi_env env, int32_t x) {
  napi_value v;
  napi_create_int32(env, x, &v);
  return v;
}

static int32_t arg_int(napi_env env, napi_callback_info info, size_t index, napi_value* rest) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t value = 0;
  if (index < argc) napi_get_value_int32(env, argv[index], &value);
  if (rest) *rest = argc > 1 ? argv[1] : NULL;
  return value;
}

static conn* find_any(io_state* io, int32_t id) {
  return id > 0 && id < io->capacity ? io->conns[id] : NULL;
}

// A connection (not a listener) by id.
static conn* find(io_state* io, int32_t id) {
  conn* c = find_any(io, id);
  return c && !c->listener ? c : NULL;
}

static int32_t take_id(io_state* io) {
  for (int32_t pass = 0; pass < 2; pass++) {
    for (int32_t id = io->next_hint; id < io->capacity; id++) {
      if (!io->taken[id]) {
        io->next_hint = id + 1;
        return id;
      }
    }
    io->next_hint = 1;
  }
  int32_t old = io->capacity;
  int32_t grown = old * 2;
  conn** conns = realloc(io->conns, (size_t)grown * sizeof(conn*));
  uint8_t* taken = realloc(io->taken, (size_t)grown);
  if (!conns || !taken) abort();
  memset(conns + old, 0, (size_t)(grown - old) * sizeof(conn*));
  memset(taken + old, 0, (size_t)(grown - old));
  io->conns = conns;
  io->taken = taken;
  io->capacity = grown;
  io->next_hint = old + 1;
  return old;
}

// start(onEvents[, maxEvents]) -> [arena: Buffer, events: Int32Array]. maxEvents (4 or more): how
// many events one delivery lists at most; tests make it small to exercise deliveries mid-iteration.
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  io_state* io = state(env);
  if (io->started || argc < 1) {
    napi_throw_error(env, "PGBIND_NATIVE_IO", "the native socket layer starts once, with a callback");
    return NULL;
  }
  int32_t max_events = DEFAULT_MAX_EVENTS;
  if (argc > 1) napi_get_value_int32(env, argv[1], &max_events);
  if (max_events < 4 || max_events > 1 << 20) {
    napi_throw_range_error(env, "PGBIND_NATIVE_IO", "maxEvents must be in 4…1048576");
    return NULL;
  }
  io->events = malloc((size_t)max_events * EVENT_INTS * sizeof(int32_t));
  if (!io->events) {
    napi_throw_error(env, "PGBIND_NATIVE_IO", "out of memory for the event list");
    return NULL;
  }
  io->max_events = max_events;
  io->started = true;
  napi_create_reference(env, argv[0], 1, &io->callback);
  napi_value name, arena, events_buffer, events, out;
  napi_create_string_utf8(env, "pgbind.sockets", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &io->async);
  napi_create_external_buffer(env, ARENA_SIZE, io->arena, NULL, NULL, &arena);
  napi_create_external_arraybuffer(env, io->events, (size_t)max_events * EVENT_INTS * sizeof(int32_t), NULL, NULL,
                                   &events_buffer);
  napi_create_typedarray(env, napi_int32_array, (size_t)max_events * EVENT_INTS, events_buffer, 0, &events);
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, arena);
  napi_set_element(env, out, 1, events);
  uv_check_init(io->loop, &io->check);
  io->check.data = io;
  uv_check_start(&io->check, on_check);
  // The check only delivers events; open connections keep the loop alive, as Node's sockets do.
  uv_unref((uv_handle_t*)&io->check);
  return out;
}

// A handle serving a duplicate of `fd` (the caller keeps its own), or NULL with *rc set.
static conn* open_duplicate(io_state* io, int fd, int* rc) {
  int copy = duplicate(fd);
  if (copy < 0) {
    *rc = -errno;
    return NULL;
  }
  conn* c = calloc(1, sizeof(conn));
  if (!c) {
    close(copy);
    *rc = UV_ENOMEM;
    return NULL;
  }
  *rc = uv_tcp_init(io->loop, &c->tcp);
  if (*rc == 0) *rc = uv_tcp_open(&c->tcp, copy);
  if (*rc != 0) {
    close(copy);
    free(c);
    return NULL;
  }
  c->io = io;
  c->tcp.data = c;
  return c;
}

// adopt(fd) -> id > 0, or a negative errno. Serves a duplicate of `fd`; the caller closes its own.
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  int rc;
  conn* c = open_duplicate(io, arg_int(env, info, 0, NULL), &rc);
  if (!c) return int_value(env, rc);
  uv_tcp_nodelay(&c->tcp, 1);
  register_conn(io, c);
  return int_value(env, c->id);
}

// listen(fd) -> id > 0, or a negative errno. Accepts connections on a duplicate of a bound, listening
// socket `fd` (the caller closes its own); each arrives as an accept event.
static napi_value js_listen(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  int32_t fd = arg_int(env, info, 0, NULL);
  int rc;
  conn* l = open_duplicate(io, fd, &rc);
  if (!l) return int_value(env, rc);
  l->listener = true;
  // uv_listen() calls listen() again: keep the backlog Node used, its default 511.
  rc = uv_listen((uv_stream_t*)&l->tcp, 511, on_connection);
  if (rc != 0) {
    // The handle owns the descriptor now: closing it closes the duplicate.
    uv_close((uv_handle_t*)&l->tcp, free_handle);
    return int_value(env, rc);
  }
#ifdef TCP_DEFER_ACCEPT
  // As PgBouncer does by default (tcp_defer_accept): the kernel hands over a connection once its first
  // message has arrived, so one wakeup accepts and reads it instead of two. PostgreSQL clients always
  // speak first. A connection that sends nothing stays in the kernel (up to this many seconds).
  int seconds = DEFER_ACCEPT_SECONDS;
  setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds));
#endif
  register_conn(io, l);
  return int_value(env, l->id);
}

// peer(id) -> [address, port] of the other end, or undefined once that is unknown (closed).
static napi_value js_peer(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find(io, arg_int(env, info, 0, NULL));
  napi_value result;
  napi_get_undefined(env, &result);
  if (!c || c->closing) return result;
  struct sockaddr_storage address;
  int length = sizeof(address);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr*)&address, &length) != 0) return result;
  char name[64] = {0};
  int port = 0;
  if (address.ss_family == AF_INET) {
    struct sockaddr_in* v4 = (struct sockaddr_in*)&address;
    uv_ip4_name(v4, name, sizeof(name));
    port = ntohs(v4->sin_port);
  } else if (address.ss_family == AF_INET6) {
    struct sockaddr_in6* v6 = (struct sockaddr_in6*)&address;
    uv_ip6_name(v6, name, sizeof(name));
    port = ntohs(v6->sin6_port);
  } else {
    return result;
  }
  napi_value text;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &text);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, text);
  napi_set_element(env, result, 1, int_value(env, port));
  return result;
}

static napi_value js_read_start(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find(io, arg_int(env, info, 0, NULL));
  if (!c || c->closing) return int_value(env, UV_EBADF);
  c->reading = true;
  if (c->starved) return int_value(env, 0);
  return int_value(env, uv_read_start((uv_stream_t*)&c->tcp, on_alloc, on_read));
}

static napi_value js_read_stop(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find(io, arg_int(env, info, 0, NULL));
  if (!c) return int_value(env, UV_EBADF);
  c->reading = false;
  unstarve(c);
  return int_value(env, uv_read_stop((uv_stream_t*)&c->tcp));
}

// write(id, bytes) -> undefined when the kernel took everything, 1 queued (a drain event follows), or a
// negative errno. The common case returns no value: making a number costs a handle per write.
static napi_value js_write(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  napi_value bytes;
  conn* c = find(io, arg_int(env, info, 0, &bytes));
  if (!c || c->closing) return int_value(env, UV_EBADF);
  void* data = NULL;
  size_t length = 0;
  if (!bytes || napi_get_buffer_info(env, bytes, &data, &length) != napi_ok) {
    napi_throw_type_error(env, "PGBIND_NATIVE_IO", "write() takes a Buffer");
    return NULL;
  }
  if (length == 0) return NULL;
  size_t done = 0;
  if (c->tcp.write_queue_size == 0) {
    uv_buf_t buf = uv_buf_init((char*)data, (unsigned int)length);
    int n = uv_try_write((uv_stream_t*)&c->tcp, &buf, 1);
    if (n == (int)length) return NULL;
    if (n < 0 && n != UV_EAGAIN) return int_value(env, n);
    if (n > 0) done = (size_t)n;
  }
  // The rest is copied: the caller's buffer may be the read arena, reused after this turn.
  size_t rest = length - done;
  write_req* w = malloc(sizeof(write_req) + rest);
  if (!w) return int_value(env, UV_ENOMEM);
  w->c = c;
  memcpy(w->data, (char*)data + done, rest);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned int)rest);
  int rc = uv_write(&w->req, (uv_stream_t*)&c->tcp, &buf, 1, on_written);
  if (rc < 0) {
    free(w);
    return int_value(env, rc);
  }
  return int_value(env, 1);
}

// end(id): shuts down the sending side once queued writes are out, then closes.
static napi_value js_end(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find(io, arg_int(env, info, 0, NULL));
  if (!c || c->closing) return int_value(env, UV_EBADF);
  uv_shutdown_t* req = malloc(sizeof(uv_shutdown_t));
  if (!req) {
    close_conn(c);
    return int_value(env, UV_ENOMEM);
  }
  req->data = c;
  int rc = uv_shutdown(req, (uv_stream_t*)&c->tcp, on_shutdown);
  if (rc < 0) {
    free(req);
    close_conn(c);
  }
  return int_value(env, rc);
}

// close(id): closes at once, without a close event: JavaScript, which asked, reports it itself (one
// call into JavaScript less per connection). The id stays taken until the handle is closed.
static napi_value js_close(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find_any(io, arg_int(env, info, 0, NULL));
  if (!c) return int_value(env, UV_EBADF);
  c->quiet = true;
  close_conn(c);
  return int_value(env, 0);
}

// release(id) -> a new descriptor for the connection (for Node to serve, e.g. to start TLS), or a
// negative errno. The native handle closes without a close event.
static napi_value js_release(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  conn* c = find(io, arg_int(env, info, 0, NULL));
  if (!c || c->closing) return int_value(env, UV_EBADF);
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t*)&c->tcp, &fd);
  if (rc < 0) return int_value(env, rc);
  int copy = duplicate(fd);
  if (copy < 0) return int_value(env, -errno);
  c->quiet = true;
  close_conn(c);
  return int_value(env, copy);
}

// forget(id): JavaScript has seen the close event; the id may be reused.
static napi_value js_forget(napi_env env, napi_callback_info info) {
  io_state* io = state(env);
  int32_t id = arg_int(env, info, 0, NULL);
  if (id > 0 && id < io->capacity && !io->conns[id]) io->taken[id] = 0;
  return NULL;
}

// The environment is going away (process exit, or a worker thread ending, whose loop must have no
// open handles left): close every handle without calling into JavaScript. The state itself stays
// allocated, since close callbacks still reach it.
static void cleanup(void* data) {
  io_state* io = (io_state*)data;
  io->closing = true;
  io->nevents = 0;
  if (io->started) {
    uv_check_stop(&io->check);
    uv_close((uv_handle_t*)&io->check, NULL);
  }
  for (int32_t id = 1; id < io->capacity; id++) {
    if (io->conns[id]) close_conn(io->conns[id]);
  }
}

NAPI_MODULE_INIT() {
  io_state* io = calloc(1, sizeof(io_state));
  if (!io) return NULL;
  io->env = env;
  napi_get_uv_event_loop(env, &io->loop);
  io->arena = malloc(ARENA_SIZE);
  io->capacity = 256;
  io->conns = calloc((size_t)io->capacity, sizeof(conn*));
  io->taken = calloc((size_t)io->capacity, 1);
  io->taken[0] = 1;
  io->next_hint = 1;
  if (!io->arena || !io->conns || !io->taken) return NULL;
  napi_set_instance_data(env, io, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup, io);
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"peer", NULL, js_peer, NULL, NULL, NULL, napi_default, NULL},
      {"readStart", NULL, js_read_start, NULL, NULL, NULL, napi_default, NULL},
      {"readStop", NULL, js_read_stop, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
      {"end", NULL, js_end, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL},
      {"forget", NULL, js_forget, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
