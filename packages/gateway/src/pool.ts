/** What the pool needs from a server connection. */
export interface Poolable {
  /** False once the connection broke or was told to close; such connections are never handed out. */
  readonly usable: boolean;
  /** Closes the connection (gracefully if possible); must not throw. */
  close(): void;
}

export interface PoolOptions<T extends Poolable> {
  /** Maximum server connections, busy and idle together. */
  readonly size: number;
  /** Opens a server connection; may take long (origin waking up) and may reject. */
  readonly connect: () => Promise<T>;
  /** How long `acquire` waits for a connection before failing, ms; 0 waits forever. */
  readonly queryWaitMs: number;
  /** Idle connections older than this many ms of idleness are closed; 0 keeps them. */
  readonly idleMs: number;
  /** Connections older than this are retired when they come back idle; 0 keeps them. */
  readonly lifetimeMs: number;
  /** Injected clock, for tests. */
  readonly now?: () => number;
}

/** Why `acquire` failed: the wait ran out, or the pool was closed. */
export class PoolError extends Error {
  readonly code: "POOL_TIMEOUT" | "POOL_CLOSED" | "CONNECT_FAILED";
  constructor(code: PoolError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PoolError";
    this.code = code;
  }
}

interface Waiter<T> {
  readonly onReady: (conn: T) => void;
  readonly onError: (error: Error) => void;
  /** When it started waiting, on the pool's clock (for `maxWaitMs`). */
  readonly since: number;
  /** When it gives up, on the monotonic clock; waiters are FIFO with one wait, so deadlines only grow. */
  readonly deadline: number;
}

interface Slot<T> {
  readonly conn: T;
  readonly createdAt: number;
  idleSince: number;
  busy: boolean;
}

/** Point-in-time figures for `SHOW POOLS` and metrics. */
export interface PoolStats {
  readonly active: number;
  readonly idle: number;
  readonly connecting: number;
  readonly waiting: number;
  /** How long the oldest waiter has waited, ms. */
  readonly maxWaitMs: number;
  readonly paused: boolean;
}

/**
 * A bounded pool of server connections with a FIFO wait queue. Every state change goes through
 * `#pulse()`, which hands idle connections to waiters and opens new ones while below `size`
 * (the pg-pool `_pulseQueue` pattern): one place decides, so no path can forget a waiter.
 */
export class ServerPool<T extends Poolable> {
  readonly #options: PoolOptions<T>;
  readonly #now: () => number;
  readonly #idle: Slot<T>[] = [];
  /**
   * Every open connection, busy or idle. Entries change only when a connection opens or closes, not per
   * transaction: a map with an entry added and deleted on every acquire and release rehashes itself often.
   */
  readonly #slots = new Map<T, Slot<T>>();
  readonly #waiters: Waiter<T>[] = [];
  #connecting = 0;
  #paused = false;
  #closed = false;
  #reaper: NodeJS.Timeout | undefined;
  /** One timer for the whole queue, armed for the oldest waiter's deadline (not one per waiter). */
  #waitTimer: NodeJS.Timeout | undefined;

  constructor(options: PoolOptions<T>) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    const interval = Math.min(
      options.idleMs || Number.POSITIVE_INFINITY,
      options.lifetimeMs || Number.POSITIVE_INFINITY,
    );
    if (Number.isFinite(interval)) {
      this.#reaper = setInterval(() => this.#reap(), Math.max(1_000, Math.floor(interval / 4)));
      this.#reaper.unref();
    }
  }

  /** Waits for a server connection; the caller must `release` it. */
  acquire(): Promise<T> {
    return new Promise<T>((resolve, reject) => this.acquireWith(resolve, reject));
  }

  /**
   * {@link acquire} with callbacks, for the hot path: a queued client gets its connection in the same
   * turn as the release that frees it, without a promise and a microtask per transaction. Exactly one of
   * the callbacks is called, never synchronously from this call (except `onReady` when a connection is
   * free right away).
   */
  acquireWith(onReady: (conn: T) => void, onError: (error: Error) => void): void {
    if (this.#closed) {
      process.nextTick(onError, new PoolError("POOL_CLOSED", "the pool is closed"));
      return;
    }
    const waitMs = this.#options.queryWaitMs;
    this.#waiters.push({
      onReady,
      onError,
      since: this.#now(),
      deadline: waitMs > 0 ? performance.now() + waitMs : Number.POSITIVE_INFINITY,
    });
    if (waitMs > 0 && this.#waitTimer === undefined) this.#armWaitTimer();
    this.#pulse();
  }

  /**
   * Takes an idle connection now if one is free and nobody is queued before us: the common case of a
   * busy pool, without a promise and a turn of the event loop per transaction.
   */
  tryAcquire(): T | undefined {
    if (this.#closed || this.#paused || this.#waiters.length > 0) return undefined;
    const slot = this.#takeIdle();
    if (!slot) return undefined;
    slot.busy = true;
    return slot.conn;
  }

  /** Returns a connection; one that is unusable, or told not to be reused, is closed. */
  release(conn: T, reuse = true): void {
    const slot = this.#slots.get(conn);
    if (!slot?.busy) return;
    slot.busy = false;
    const lifetime = this.#options.lifetimeMs;
    const expired = lifetime > 0 && this.#now() - slot.createdAt >= lifetime;
    if (!reuse || !conn.usable || expired || this.#closed) {
      this.#closeSlot(slot);
    } else {
      slot.idleSince = this.#now();
      this.#idle.push(slot);
    }
    this.#pulse();
  }

  /** Stops handing out connections (admin PAUSE); waiters keep waiting. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#pulse();
  }

  /** Closes idle connections now and busy ones as they come back; fails all waiters. */
  close(): void {
    this.#closed = true;
    if (this.#reaper) clearInterval(this.#reaper);
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    for (const slot of this.#idle.splice(0)) this.#closeSlot(slot);
    for (const waiter of this.#waiters.splice(0)) {
      waiter.onError(new PoolError("POOL_CLOSED", "the pool is closing"));
    }
  }

  /**
   * Forgets a connection that closed by itself (the origin or the network dropped it), busy or idle:
   * it no longer counts against `size`, even if whoever held it never releases it. A later `release`
   * of it is a no-op.
   */
  forget(conn: T): void {
    const slot = this.#slots.get(conn);
    if (!slot) return;
    this.#slots.delete(conn);
    if (!slot.busy) {
      const index = this.#idle.indexOf(slot);
      if (index !== -1) this.#idle.splice(index, 1);
    }
    this.#pulse();
  }

  /** Closes idle connections (config reload changed the origin); busy ones close on release. */
  drainIdle(): void {
    for (const slot of this.#idle.splice(0)) this.#closeSlot(slot);
  }

  get stats(): PoolStats {
    const oldest = this.#waiters[0];
    return {
      active: this.#slots.size - this.#idle.length,
      idle: this.#idle.length,
      connecting: this.#connecting,
      waiting: this.#waiters.length,
      maxWaitMs: oldest ? this.#now() - oldest.since : 0,
      paused: this.#paused,
    };
  }

  /** Busy connections, for `SHOW SERVERS`. */
  get busy(): T[] {
    const busy: T[] = [];
    for (const slot of this.#slots.values()) if (slot.busy) busy.push(slot.conn);
    return busy;
  }

  /** Idle connections, for `SHOW SERVERS`. */
  get idle(): readonly T[] {
    return this.#idle.map((slot) => slot.conn);
  }

  #pulse(): void {
    if (this.#closed || this.#paused) return;
    while (this.#waiters.length > 0) {
      const slot = this.#takeIdle();
      if (!slot) break;
      const waiter = this.#waiters.shift() as Waiter<T>;
      slot.busy = true;
      // State is settled before the callback, which may release or acquire again (re-entering here).
      waiter.onReady(slot.conn);
    }
    const total = this.#slots.size + this.#connecting;
    const missing = Math.min(this.#waiters.length - this.#connecting, this.#options.size - total);
    for (let i = 0; i < missing; i++) this.#open();
  }

  #takeIdle(): Slot<T> | undefined {
    // Most recently used first: keeps a warm core and lets surplus connections idle out.
    for (let slot = this.#idle.pop(); slot; slot = this.#idle.pop()) {
      if (slot.conn.usable) return slot;
      this.#closeSlot(slot);
    }
    return undefined;
  }

  #open(): void {
    this.#connecting++;
    this.#options.connect().then(
      (conn) => {
        this.#connecting--;
        if (this.#closed) {
          conn.close();
          return;
        }
        const slot = { conn, createdAt: this.#now(), idleSince: this.#now(), busy: false };
        this.#slots.set(conn, slot);
        this.#idle.push(slot);
        this.#pulse();
      },
      (cause: unknown) => {
        this.#connecting--;
        // The connect already retried for its whole budget. With no live connection that could come back,
        // everyone waiting would hit the same failure: fail them all now (PgBouncer's fast-fail), rather
        // than one per budget. With live ones, fail the oldest and let the others wait for a release.
        const reason = cause instanceof Error ? cause.message : String(cause);
        const noneAlive = this.#slots.size === 0;
        const failing = noneAlive ? this.#waiters.splice(0) : this.#waiters.splice(0, 1);
        for (const waiter of failing) {
          waiter.onError(
            new PoolError("CONNECT_FAILED", `could not connect to the origin: ${reason}`, { cause }),
          );
        }
        this.#pulse();
      },
    );
  }

  #reap(): void {
    const now = this.#now();
    const { idleMs, lifetimeMs } = this.#options;
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const slot = this.#idle[i] as Slot<T>;
      const idleTooLong = idleMs > 0 && now - slot.idleSince >= idleMs;
      const tooOld = lifetimeMs > 0 && now - slot.createdAt >= lifetimeMs;
      if (idleTooLong || tooOld || !slot.conn.usable) {
        this.#idle.splice(i, 1);
        this.#closeSlot(slot);
      }
    }
  }

  #closeSlot(slot: Slot<T>): void {
    this.#slots.delete(slot.conn);
    slot.conn.close();
  }

  #armWaitTimer(): void {
    const oldest = this.#waiters[0];
    if (!oldest || this.#closed) return;
    this.#waitTimer = setTimeout(
      () => this.#expireWaiters(),
      Math.max(1, Math.ceil(oldest.deadline - performance.now())),
    );
  }

  /** Fails the waiters whose deadline passed (the oldest ones), then re-arms for the next. */
  #expireWaiters(): void {
    this.#waitTimer = undefined;
    const now = performance.now();
    const waitMs = this.#options.queryWaitMs;
    while (this.#waiters.length > 0 && (this.#waiters[0] as Waiter<T>).deadline <= now) {
      const waiter = this.#waiters.shift() as Waiter<T>;
      waiter.onError(
        new PoolError(
          "POOL_TIMEOUT",
          `no server connection became free within ${waitMs / 1000} s (pool size ${this.#options.size})`,
        ),
      );
    }
    this.#armWaitTimer();
  }
}
