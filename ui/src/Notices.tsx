import type { ReactNode } from "react";
import type { Loaded } from "./hooks";
import { canRetry, displayText } from "./logic";

export interface Message {
  text: string;
  error?: boolean;
}

// What a list page says above its items: the outcome of the last page-wide action
// (announced to screen readers; focusable, for when the action took away what had the
// focus), the list's load error with a way to try again, and "Loading…" before the first
// answer.
export function Notices<T>({ message, list }: { message: Message | null; list: Loaded<T> }) {
  return (
    <>
      <div aria-live="polite">
        {message && (
          <p className={`notice ${message.error ? "error" : "ok"}`} role={message.error ? "alert" : "status"}
             tabIndex={-1}>
            {displayText(message.text)}
          </p>
        )}
      </div>
      <LoadError list={list} />
      {list.loading && !list.data && !list.error && <p className="muted" role="status">Loading…</p>}
    </>
  );
}

/** A load that failed: why, whether it is tried again by itself, and "Try again" (not
 * for a refusal of the request itself, which the same request gets again: `canRetry`). */
export function LoadError<T>({ list }: { list: Loaded<T> }) {
  if (!list.error) return null;
  return (
    <div className="notice error load-error" role="alert">
      <span>{displayText(list.error.message)}</span>
      {list.retryIn !== null && !list.loading && (
        <span className="muted"> Trying again in {list.retryIn} s.</span>
      )}
      {canRetry(list.error) && (
        <button type="button" onClick={list.reload} disabled={list.loading}>
          {list.loading ? "Loading…" : "Try again"}
        </button>
      )}
    </div>
  );
}

/** The outcome of an action, inside the card that acted (where the user is looking).
 * The live region stays in place while the card shows, so that what appears in it is
 * announced; `children` (an Undo button, say) go after the text. */
export function CardNote({ note, children }: { note: Message | null; children?: ReactNode }) {
  return (
    <div className="card-note" aria-live="polite">
      {note && (
        <div className={`notice ${note.error ? "error" : "ok"}`} role={note.error ? "alert" : "status"}>
          {displayText(note.text)}
          {children}
        </div>
      )}
    </div>
  );
}
