import { useEffect, useRef, type ReactNode } from "react";

interface Props {
  title: string;
  open: boolean;
  onClose: () => void;
  children: ReactNode;
  actions: ReactNode;
  /** A request is running: Escape does not close it (it would look cancelled, and is not). */
  busy?: boolean;
}

/** A modal on the native <dialog>: focus trapping, Escape and the backdrop come for free. */
export function Dialog({ title, open, onClose, children, actions, busy = false }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
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
