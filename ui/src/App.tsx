import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { api, ApiError, getApiKey, setApiKey, UNAUTHORIZED_EVENT, type Me } from "./api";
import { Duplicates } from "./Duplicates";
import { Groups } from "./Groups";
import { displayText } from "./logic";
import { useHashRoute } from "./hooks";
import { Overview } from "./Overview";
import { Problems } from "./Problems";

// Immich's own web app. Its session cookie is scoped to the host, not the port, so logging
// in there (default port 2283) also authenticates this UI on the same host.
const IMMICH_LOGIN =
  import.meta.env.VITE_IMMICH_LOGIN_URL ||
  `${window.location.protocol}//${window.location.hostname}:2283/auth/login`;

const PAGES = [
  { id: "overview", label: "Overview" },
  { id: "duplicates", label: "Duplicates" },
  { id: "groups", label: "Groups" },
  { id: "problems", label: "Files with problems" },
];

type Auth =
  | { state: "checking" }
  | { state: "ok"; me: Me }
  | { state: "login" }
  | { state: "error"; message: string; unreachable: boolean };

export function App() {
  const [route, go] = useHashRoute();
  const [auth, setAuth] = useState<Auth>({ state: "checking" });
  const [keyOpen, setKeyOpen] = useState(false);

  const check = useCallback(() => {
    api.me().then(
      (me) => setAuth({ state: "ok", me }),
      (e: ApiError) =>
        setAuth(e.status === 401 ? { state: "login" }
                                  : { state: "error", message: e.message, unreachable: e.status === 0 }),
    );
  }, []);

  useEffect(check, [check]);
  useEffect(() => {
    const on = () => setAuth({ state: "login" });
    window.addEventListener(UNAUTHORIZED_EVENT, on);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, on);
  }, []);

  const page = PAGES.some((p) => p.id === route.page) ? route.page : "overview";
  // Another page opened by a button of the page before (the Overview's Review, Browse):
  // that button is gone, and the keyboard with it; it goes to the new page's heading
  // rather than back to the top of the document
  const shownPage = useRef(page);
  useEffect(() => {
    if (shownPage.current === page) return;
    shownPage.current = page;
    const at = document.activeElement;
    if (!at || at === document.body || !at.isConnected) {
      document.querySelector<HTMLElement>("main h1")?.focus({ preventScroll: true });
    }
  });
  const signedIn = auth.state === "ok" ? auth.me : null;
  // Only someone the gateway will answer gets the review pages; anyone else is told why.
  const me = signedIn?.canReview ? signedIn : null;

  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="#/overview" aria-label="Twinlens overview">
          <span className="logo" aria-hidden="true" />
          Twinlens
        </a>
        <nav aria-label="Main">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={page === p.id ? "page" : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          {me?.localMode && <span className="badge" title="No Immich configured">Local mode</span>}
          {signedIn && !signedIn.localMode && signedIn.user && (
            <span>{signedIn.user.name || signedIn.user.email}</span>
          )}
          {(!signedIn?.localMode) && (
            <button type="button" className="link" onClick={() => setKeyOpen((o) => !o)}
                    aria-expanded={keyOpen} aria-controls="api-key-panel">
              API key
            </button>
          )}
        </div>
      </header>
      {keyOpen && (
        <ApiKeyPanel onSaved={() => { setKeyOpen(false); setAuth({ state: "checking" }); check(); }} />
      )}
      <main id="main">
        {auth.state === "checking" && <p className="muted" role="status">Connecting…</p>}
        {auth.state === "login" && <LoginNotice onKey={() => setKeyOpen(true)} />}
        {auth.state === "error" && (
          <div className="notice error" role="alert">
            {/* No answer at all (network down, gateway not running) is no answer "with an error" */}
            <p>{displayText(auth.unreachable ? auth.message : `The Twinlens gateway answered with an error: ${auth.message}`)}</p>
            <button type="button" onClick={check}>Try again</button>
          </div>
        )}
        {signedIn && !signedIn.canReview && <AdminsOnlyNotice />}
        {me && page === "overview" && <Overview localMode={me.localMode} params={route.params} go={go} />}
        {me && page === "duplicates" && (
          <Duplicates localMode={me.localMode} params={route.params} go={go} />
        )}
        {me && page === "groups" && (
          <Groups localMode={me.localMode} params={route.params} go={go} />
        )}
        {me && page === "problems" && <Problems params={route.params} go={go} />}
      </main>
    </div>
  );
}

function LoginNotice({ onKey }: { onKey: () => void }) {
  return (
    <div className="notice" role="alert">
      <h1>Log in to Immich</h1>
      <p>
        Twinlens uses your Immich account and could not find a login.{" "}
        <a href={IMMICH_LOGIN} target="_blank" rel="noreferrer">Log in to Immich</a> in this
        browser, then <button type="button" className="link" onClick={() => window.location.reload()}>reload this page</button>
        {" "}— or paste an Immich API key (Immich → Account settings → API keys).
      </p>
      <button type="button" onClick={onKey}>Use an API key</button>
    </div>
  );
}

function AdminsOnlyNotice() {
  return (
    <div className="notice" role="alert">
      <h1>For Immich administrators</h1>
      <p>
        Twinlens shows and acts on every file in the photo library, whoever it belongs to, so
        its review pages are open only to Immich administrators, as Immich's own library and
        job pages are. Your Immich account is not an administrator's: ask yours.
      </p>
    </div>
  );
}

function ApiKeyPanel({ onSaved }: { onSaved: () => void }) {
  const [value, setValue] = useState(getApiKey());
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setApiKey(value.trim());
    onSaved();
  };
  return (
    <form id="api-key-panel" className="keypanel" onSubmit={submit}>
      <label htmlFor="api-key">Immich API key</label>
      <input id="api-key" type="password" autoComplete="off" value={value}
             onChange={(e) => setValue(e.target.value)}
             aria-describedby="api-key-help" />
      <button type="submit">Save</button>
      {getApiKey() && (
        <button type="button" onClick={() => { setApiKey(""); setValue(""); onSaved(); }}>
          Forget key
        </button>
      )}
      <p id="api-key-help" className="muted">
        Kept in this browser only (localStorage) and sent as <code>x-api-key</code>. Leave empty
        to use your Immich login.
      </p>
    </form>
  );
}
