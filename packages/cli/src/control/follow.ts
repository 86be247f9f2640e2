import type { ControlBindingResolver, ControlResolvedBinding } from "./resolve.js";

/** How often `pgbind serve` asks the control plane whether its credentials are still active. */
export const DEFAULT_CHECK_MS = 10_000;

export interface FollowedBinding {
  readonly binding: string;
  readonly id: string;
  credentialId: string;
}

/**
 * Keeps a long-running backend on a live credential: every `intervalMs` it asks the control plane
 * whether each binding's credential is still active; once one has been rotated out (it now only
 * lasts until its grace period ends), revoked or expired, it resolves the binding again (minting a
 * new credential) and hands the result to `onChange`, well before the old one stops working.
 * Returns a function that stops following.
 */
export function followCredentials(
  resolver: ControlBindingResolver,
  bindings: readonly FollowedBinding[],
  options: {
    readonly intervalMs: number;
    readonly onChange: (binding: string, resolved: ControlResolvedBinding) => void;
    readonly log: (message: string) => void;
  },
): () => void {
  let running = false;
  const check = async () => {
    if (running) return;
    running = true;
    try {
      for (const followed of bindings) {
        try {
          if (await resolver.isActive(followed.id, followed.credentialId)) continue;
          const resolved = await resolver.resolve(followed.binding, followed.id);
          options.log(
            `${followed.binding}: credential ${followed.credentialId} is no longer active; now using ${resolved.credentialId}`,
          );
          followed.credentialId = resolved.credentialId;
          options.onChange(followed.binding, resolved);
        } catch (error) {
          // The control plane may be restarting: keep the current credential and ask again next time.
          options.log(`${followed.binding}: cannot check its credential: ${(error as Error).message}`);
        }
      }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void check(), options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
