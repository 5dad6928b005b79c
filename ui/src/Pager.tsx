import { pagerState } from "./logic";

interface Props {
  page: number;
  size: number;
  total: number;
  onPage: (page: number) => void;
  label: string;
}

/** First / Previous / "Page N of M" / Next / Last: a long list is crossed in one step. */
export function Pager({ page, size, total, onPage, label }: Props) {
  const p = pagerState(page, size, total);
  if (p.pages <= 1) return null;
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" onClick={() => onPage(1)} disabled={!p.back}
              aria-label="First page">
        « First
      </button>
      <button type="button" onClick={() => onPage(page - 1)} disabled={!p.back}>
        ← Previous
      </button>
      <span aria-live="polite">
        Page {p.page} of {p.pages}
      </span>
      <button type="button" onClick={() => onPage(page + 1)} disabled={!p.forward}>
        Next →
      </button>
      <button type="button" onClick={() => onPage(p.pages)} disabled={!p.forward}
              aria-label={`Last page (${p.pages})`}>
        Last »
      </button>
    </nav>
  );
}
