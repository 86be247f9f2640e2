import { type FSWatcher, statSync, watch } from "node:fs";

/** How long a directory must stay quiet before a change is reported: a build writes many files. */
export const DEBOUNCE_MS = 100;
const REAPPEAR_POLL_MS = 250;

/**
 * Calls `onChange` once per burst of changes in `dir` (debounced). Survives the directory being
 * deleted and recreated (`rm -rf dist && build`): it then waits for the directory to come back and
 * watches the new one. Never keeps the process alive. Returns a function that stops watching.
 */
export function watchDirectory(dir: string, onChange: () => void): () => void {
  let watcher: FSWatcher | undefined;
  let watchedInode: number | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;

  const inode = () => statSync(dir, { throwIfNoEntry: false })?.ino;
  const schedule = () => {
    clearTimeout(debounce);
    debounce = setTimeout(settle, DEBOUNCE_MS);
    debounce.unref();
  };
  const settle = () => {
    if (stopped) return;
    if (inode() !== watchedInode) {
      // The watched directory was replaced or removed; a watch on the old inode sees nothing more.
      unwatch();
      waitForDirectory();
      return;
    }
    onChange();
  };
  const unwatch = () => {
    watcher?.close();
    watcher = undefined;
  };
  const arm = (): boolean => {
    watchedInode = inode();
    if (watchedInode === undefined) return false;
    try {
      watcher = watch(dir, { persistent: false }, schedule);
    } catch {
      return false;
    }
    watcher.on("error", () => {
      unwatch();
      waitForDirectory();
    });
    return true;
  };
  const waitForDirectory = () => {
    if (stopped || poll !== undefined) return;
    poll = setInterval(() => {
      if (stopped || !arm()) return;
      clearInterval(poll);
      poll = undefined;
      onChange();
    }, REAPPEAR_POLL_MS);
    poll.unref();
  };

  if (!arm()) waitForDirectory();
  return () => {
    stopped = true;
    clearTimeout(debounce);
    clearInterval(poll);
    unwatch();
  };
}
