import { type FormEvent, useEffect, useState } from "react";
import { useLibraryRoots } from "./hooks";
import { displayPath, folderPath, resolveFolder, rootHolding, unescapePath } from "./logic";

/** The folder as typed in a list's filter: the list follows it once submitted (each
 * keystroke is no query). Shown as the rows show paths: a byte that is not UTF-8 as \xNN,
 * read back so (`folderFilter`). */
export function useTypedFolder(folder: string): [string, (v: string) => void] {
  const [typed, setTyped] = useState(displayPath(folder));
  useEffect(() => setTyped(displayPath(folder)), [folder]);
  return [typed, setTyped];
}

/** A list's folder filter: what is typed, the library roots (`useLibraryRoots`) and the
 * one the applied folder is in (`picked`, "" for the whole library), and why a folder
 * typed could not be placed (`choose`: relative, with several roots and none picked). */
export interface FolderForm {
  typed: string;
  setTyped: (v: string) => void;
  roots: string[];
  picked: string;
  /** Pick a root (the picker beside the field, with several): its list is shown at once,
   * under the folder typed relative to it if any; "" is the whole library. */
  pick: (root: string) => void;
  choose: string | null;
  /** The form's submit: the folder typed, placed (`resolveFolder`), applied. */
  submit: (e: FormEvent) => void;
}

/** The folder filter of a list showing `folder` (from its URL); `apply` shows another. */
export function useFolderForm(folder: string, apply: (folder: string) => void): FolderForm {
  const roots = useLibraryRoots();
  const [typed, setTyped] = useTypedFolder(folder);
  const [choose, setChoose] = useState<string | null>(null);
  useEffect(() => setChoose(null), [folder]);
  const picked = rootHolding(folder, roots);
  const place = (text: string, root: string) => {
    const r = resolveFolder(text, roots, root);
    if ("choose" in r) {
      setChoose(r.choose);
    } else {
      setChoose(null);
      apply(r.folder);
    }
  };
  const pick = (root: string) => {
    if (!root) return place("", "");
    // A full path in another root was not meant: the root picked is
    const full = unescapePath(folderPath(typed.trim()));
    place(full.startsWith("/") && rootHolding(full, roots) !== root ? "" : typed, root);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    place(typed, picked);
  };
  return { typed, setTyped, roots, picked, pick, choose, submit };
}

/** A list filter's folder field, inside the page's form (whose submit is `form.submit`):
 * with several library roots a picker of them ("Library folder"), the input, "Show", and
 * "Whole library" while a folder is applied. The placeholder is a folder of the root
 * picked (or the first); a folder may be typed relative to it. */
export function FolderField({ form, folder, onClear, helpId, help }: {
  form: FolderForm;
  folder: string;
  onClear: () => void;
  helpId: string;
  help: string;
}) {
  const { roots, picked } = form;
  const root = picked || roots[0];
  const under = root ? folderPath(root) : "";
  const placeholder = root ? `${displayPath(under === "/" ? "" : under)}/…` : "/photos/2024";
  const relative = roots.length === 1
    ? ` A folder relative to the library (${displayPath(root)}) is taken under it.`
    : roots.length > 1
      ? " A folder relative to the library is taken under the library folder whose name it"
        + " starts with, else under the one picked."
      : "";
  return (
    <>
      {roots.length > 1 && (
        <label>
          Library folder
          <select className="root-picker" value={picked} onChange={(e) => form.pick(e.target.value)}>
            <option value="">All ({roots.length})</option>
            {roots.map((r) => <option key={r} value={r}>{displayPath(r)}</option>)}
          </select>
        </label>
      )}
      <label>
        Folder
        <input type="text" className="folder-input" value={form.typed} spellCheck={false}
               onChange={(e) => form.setTyped(e.target.value)} placeholder={placeholder}
               aria-describedby={helpId} />
      </label>
      <button type="submit">Show</button>
      {folder && <button type="button" onClick={onClear}>Whole library</button>}
      <span id={helpId} className="sr-only">{help}{relative}</span>
      {form.choose && <p className="notice error folder-choose" role="alert">{form.choose}</p>}
    </>
  );
}
