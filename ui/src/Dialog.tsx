import { useEffect, useRef, type ReactNode } from "react";

interface Props {
  title: string;
  open: boolean;
  onClose: () => void;
  children: ReactNode;
  actions: ReactNode;
  /** A request is running: Escape does not close it (it would look cancelled, and is not). */
  busy?: boolean;
  /** Where the keyboard goes back to when the dialog closes and left it nowhere (Cancel,
   * Escape): the button that opened it, say, which a dry run may have disabled while the
   * dialog was being prepared (the browser then has nothing to go back to). By default, what
   * had the focus when the dialog opened, if it can still take it. */
  returnFocus?: () => HTMLElement | null | undefined;
}

/** Whether `el` can take the focus back: still on the page and not disabled. */
export function canTakeFocus(el: Element | null | undefined): el is HTMLElement {
  return !!el && el.isConnected && !(el as HTMLButtonElement).disabled && typeof (el as HTMLElement).focus === "function";
}

/** A modal on the native <dialog>: focus trapping, Escape and the backdrop come for free. */
export function Dialog({ title, open, onClose, children, actions, busy = false, returnFocus }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<Element | null>(null);
  const returnRef = useRef(returnFocus);
  returnRef.current = returnFocus;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
    }
    if (!open && d.open) {
      d.close();
      // Closed with the keyboard nowhere (on the body, or in the dialog's own gone content):
      // back where the user was, else the next Tab starts again from the top of the page
      const at = document.activeElement;
      if (!at || at === document.body || d.contains(at)) {
        const to = returnRef.current?.() ?? opener.current;
        if (canTakeFocus(to)) to.focus();
      }
    }
  }, [open]);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title"
            onClose={() => {
              // Browsers let a second Escape close a dialog whatever its cancel handler
              // does: while a request runs, it opens again rather than look cancelled.
              if (busy && open) ref.current?.showModal();
              else onClose();
            }}
            onCancel={(e) => { e.preventDefault(); if (!busy) onClose(); }}>
      {open && (
        <>
          <h2 id="dialog-title">{title}</h2>
          <div className="dialog-body">{children}</div>
          <div className="dialog-actions">{actions}</div>
        </>
      )}
    </dialog>
  );
}
