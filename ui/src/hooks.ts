import { useCallback, useEffect, useRef, useState } from "react";
import { pageToShow } from "./logic";

export interface Route {
  page: string;
  params: URLSearchParams;
}

function parseHash(): Route {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [page, qs] = raw.split("?", 2);
  return { page: page || "overview", params: new URLSearchParams(qs ?? "") };
}

/** Hash routes (#/duplicates?type=exact&page=2): static hosting needs no fallback rules and
 * the back button restores filters and page. */
export function useHashRoute(): [Route, (page: string, params?: Record<string, string>) => void] {
  const [route, setRoute] = useState<Route>(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const go = useCallback((page: string, params: Record<string, string> = {}) => {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "")).toString();
    window.location.hash = `#/${page}${q ? `?${q}` : ""}`;
  }, []);
  return [route, go];
}

export interface Loaded<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  /** The key `data` was loaded for: on the render where the key changes, `data` is still
   * the previous key's (and `loading` not yet set). */
  of: string | null;
  reload: () => void;
}

/** Load with `fn` whenever `key` changes; stale answers of earlier keys are dropped. */
export function useLoad<T>(fn: () => Promise<T>, key: string): Loaded<T> {
  // `of`: the key `data` was loaded for. A failed load of another page or filter must not
  // leave the previous one's items on screen, under the new page number, with their buttons.
  const [state, setState] = useState<{
    data: T | null; error: Error | null; loading: boolean; of: string | null;
  }>({ data: null, error: null, loading: true, of: null });
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fnRef.current().then(
      (data) => live && setState({ data, error: null, loading: false, of: key }),
      (error: Error) =>
        live &&
        setState((s) => (s.of === key ? { ...s, error, loading: false }
                                      : { data: null, error, loading: false, of: null })),
    );
    return () => {
      live = false;
    };
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Call `fn` every `ms` while `active`; the next call waits for the previous one. */
export function usePoll(fn: () => Promise<unknown>, ms: number, active: boolean): void {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    if (!active) return;
    let live = true;
    let timer: number | undefined;
    const step = async () => {
      try {
        await fnRef.current();
      } catch {
        /* the caller shows errors; keep polling */
      }
      if (live) timer = window.setTimeout(step, ms);
    };
    timer = window.setTimeout(step, ms);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [ms, active]);
}

/** A page emptied by decisions or corrections (here or by another reviewer) moves to the
 * last page left, once the list of this `key` has loaded (see `pageToShow`). */
export function useEmptyPageStep(
  list: Loaded<{ total: number }>, key: string, page: number, size: number,
  go: (page: number) => void,
): void {
  const total = list.of === key ? list.data?.total : undefined;
  const goRef = useRef(go);
  goRef.current = go;
  useEffect(() => {
    if (list.loading || total === undefined) return;
    const to = pageToShow(page, total, size);
    if (to !== null) goRef.current(to);
  }, [list.loading, total, page, size]);
}
