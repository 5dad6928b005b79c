import type { Loaded } from "./hooks";

export interface Message {
  text: string;
  error?: boolean;
}

// What a list page says above its items: the outcome of the last action (announced to
// screen readers), the list's load error, and "Loading…" before the first answer.
export function Notices<T>({ message, list }: { message: Message | null; list: Loaded<T> }) {
  return (
    <>
      <div aria-live="polite">
        {message && (
          <p className={`notice ${message.error ? "error" : "ok"}`} role={message.error ? "alert" : "status"}>
            {message.text}
          </p>
        )}
      </div>
      {list.error && <p className="notice error" role="alert">{list.error.message}</p>}
      {list.loading && !list.data && <p className="muted" role="status">Loading…</p>}
    </>
  );
}
