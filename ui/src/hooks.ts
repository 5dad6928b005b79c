import { useCallback, useEffect, useRef, useState, type RefObject } from "react";
import { api, quotePath, unquotePath } from "./api";
import { jobRoots, pageToShow, retryDelay } from "./logic";

/** A route's parameters. Not URLSearchParams: that turns a name's byte that is not UTF-8
 * (a lone surrogate, see `quotePath`) into U+FFFD, and a folder so named into another. */
export interface Params {
  get(name: string): string | null;
}

export interface Route {
  page: string;
  params: Params;
}

/** The parameters of a query string, each decoded from its bytes (`unquotePath`); the
 * first of a repeated name counts. */
export function parseQuery(qs: string): Params {
  const values = new Map<string, string>();
  for (const part of qs.split("&")) {
    if (!part) continue;
    const at = part.indexOf("=");
    const k = unquotePath(at < 0 ? part : part.slice(0, at));
    if (!values.has(k)) values.set(k, at < 0 ? "" : unquotePath(part.slice(at + 1)));
  }
  return { get: (name) => values.get(name) ?? null };
}

/** A query string of `params` (empty values left out), each value as its bytes
 * (`quotePath`), which `parseQuery` reads back as it was. */
export function hashQuery(params: Record<string, string>): string {
  const form = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
  return Object.entries(params).filter(([, v]) => v !== "")
    .map(([k, v]) => `${form(k)}=${quotePath(v) ?? form(v)}`).join("&");
}

function parseHash(): Route {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  const [page, qs] = at < 0 ? [raw, ""] : [raw.slice(0, at), raw.slice(at + 1)];
  return { page: page || "overview", params: parseQuery(qs) };
}

/** Go to a page. `replace`: instead of the route shown (a step the list made by itself,
 * such as leaving a page that came back empty), so that Back does not return to it. */
export type Go = (page: string, params?: Record<string, string>, opts?: { replace?: boolean }) => void;

/** Hash routes (#/duplicates?type=exact&page=2): static hosting needs no fallback rules and
 * the back button restores filters and page. What the user asks for adds a history entry;
 * a step the app makes by itself replaces the current one (else Back would land on the
 * page it stepped away from, which steps forward again). */
export function useHashRoute(): [Route, Go] {
  const [route, setRoute] = useState<Route>(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const go = useCallback<Go>((page, params = {}, opts = {}) => {
    const q = hashQuery(params);
    const hash = `#/${page}${q ? `?${q}` : ""}`;
    if (opts.replace) {
      // replaceState fires no hashchange: the route is read again here
      window.history.replaceState(window.history.state, "", hash);
      setRoute(parseHash());
    } else {
      window.location.hash = hash;
    }
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
  /** After a failed load that is tried again by itself (a busy service): in how many
   * seconds; null otherwise. */
  retryIn: number | null;
  reload: () => void;
}

/** Load with `fn` whenever `key` changes; stale answers of earlier keys are dropped. A
 * load a busy service refused (503) is tried again by itself after the Retry-After it
 * gave (see `retryDelay`: a few times at most); `reload` tries at once. */
export function useLoad<T>(fn: () => Promise<T>, key: string): Loaded<T> {
  // `of`: the key `data` was loaded for. A failed load of another page or filter must not
  // leave the previous one's items on screen, under the new page number, with their buttons.
  const [state, setState] = useState<{
    data: T | null; error: Error | null; loading: boolean; of: string | null;
    retryIn: number | null;
  }>({ data: null, error: null, loading: true, of: null, retryIn: null });
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  // Automatic tries made since the last answer, a key change or a reload by hand
  const tries = useRef({ key, n: 0 });
  useEffect(() => {
    let live = true;
    let timer: number | undefined;
    if (tries.current.key !== key) tries.current = { key, n: 0 };
    setState((s) => ({ ...s, loading: true, retryIn: null }));
    fnRef.current().then(
      (data) => {
        if (!live) return;
        tries.current.n = 0;
        setState({ data, error: null, loading: false, of: key, retryIn: null });
      },
      (error: Error) => {
        if (!live) return;
        const delay = retryDelay(error, tries.current.n);
        if (delay !== null) {
          tries.current.n += 1;
          timer = window.setTimeout(() => setTick((t) => t + 1), delay);
        }
        const retryIn = delay === null ? null : Math.round(delay / 1000);
        setState((s) => (s.of === key ? { ...s, error, loading: false, retryIn }
                                      : { data: null, error, loading: false, of: null, retryIn }));
      },
    );
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [key, tick]);
  const reload = useCallback(() => {
    tries.current.n = 0;
    setTick((t) => t + 1);
  }, []);
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
 * last page left, once the list of this `key` has loaded (see `pageToShow`). `go` must
 * replace the route rather than add one (`Go`'s `replace`): Back would lead to the empty
 * page, which steps forward again. */
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

/** After a step back that carried notes (see `carryNotes`): once the list of the key
 * stepped to has loaded, the focus goes to the first card with a note (the card that had
 * it left with the page). `arm(key)` is called when the step is made. */
export function useFocusAfterStep(
  list: Loaded<unknown>, key: string, container: RefObject<HTMLElement | null>,
  first: string | undefined,
): (to: string) => void {
  const armed = useRef<string | null>(null);
  useEffect(() => {
    if (armed.current !== key || list.loading || list.of !== key) return;
    armed.current = null;
    if (first !== undefined) focusCard(container.current, first);
  });
  return useCallback((to: string) => {
    armed.current = to;
  }, []);
}

/** Move focus from the card `id` in `container` (its children are the cards, each with
 * `data-id`) to the next card matching `selector`, else the previous one, else the card
 * itself: a card that left the list took the focused button with it, which would leave
 * the keyboard at the top of the page. */
export function focusNear(container: HTMLElement | null, id: string, selector: string): void {
  if (!container) return;
  const cards = [...container.children] as HTMLElement[];
  const at = cards.findIndex((el) => el.dataset.id === id);
  if (at < 0) return;
  const target =
    cards.slice(at + 1).find((el) => el.matches(selector)) ??
    cards.slice(0, at).reverse().find((el) => el.matches(selector)) ??
    cards[at];
  target.focus();
}

/** Focus the card `id` in `container` (after a correction its note is there). */
export function focusCard(container: HTMLElement | null, id: string): void {
  const card = ([...(container?.children ?? [])] as HTMLElement[]).find((el) => el.dataset.id === id);
  card?.focus();
}

/** Whether `ref`'s element has come within `margin` of the viewport (true from then on):
 * what is fetched by hand for it (a thumbnail with an API key header, which the browser's
 * own lazy loading of <img> does not cover) waits until then. Nothing is observed while not
 * `enabled`; true at once where the browser has no IntersectionObserver. */
export function useNearViewport(
  ref: RefObject<Element | null>, enabled: boolean, margin = "200px",
): boolean {
  const [near, setNear] = useState(false);
  useEffect(() => {
    if (!enabled || near) return;
    const el = ref.current;
    if (!el) return;
    if (typeof IntersectionObserver === "undefined") {
      setNear(true);
      return;
    }
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        setNear(true);
        io.disconnect();
      }
    }, { rootMargin: margin });
    io.observe(el);
    return () => io.disconnect();
  }, [ref, enabled, near, margin]);
  return near;
}

// The library roots: asked once a page load, and again after a failure
let rootsAsked: Promise<string[]> | null = null;

/** The library roots the UI knows of (GET /roots: the configured ones, scanned or not);
 * empty until known. Should that fail, those the jobs name (a gateway without /roots). */
export function useLibraryRoots(): string[] {
  const [roots, setRoots] = useState<string[]>([]);
  useEffect(() => {
    let live = true;
    rootsAsked ??= api.roots().then(
      (r) => (r.items ?? []).map((x) => x.path),
      () => api.jobs().then((r) => jobRoots(r.items ?? [])),
    ).catch(() => {
      rootsAsked = null;
      return [];
    });
    void rootsAsked.then((r) => {
      if (live) setRoots(r);
    });
    return () => {
      live = false;
    };
  }, []);
  return roots;
}

let runsUnderWay = 0;

const warnBeforeLeaving = (e: BeforeUnloadEvent) => {
  e.preventDefault();
  e.returnValue = true; // browsers before preventDefault() was enough (Chrome < 119)
};

/** A bulk run (`work`) under way: until it ends, reloading or closing the tab asks first
 * (the run would stop halfway, its report lost). Tied to the run, not to the page: going
 * to another page of the app does not stop the run, so the warning stays. */
export async function whileRunning<T>(work: () => Promise<T>): Promise<T> {
  if (runsUnderWay++ === 0) window.addEventListener("beforeunload", warnBeforeLeaving);
  try {
    return await work();
  } finally {
    if (--runsUnderWay === 0) window.removeEventListener("beforeunload", warnBeforeLeaving);
  }
}
