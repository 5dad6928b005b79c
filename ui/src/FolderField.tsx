import { useEffect, useState } from "react";
import { displayPath, folderPath } from "./logic";

/** The folder as typed in a list's filter: the list follows it once submitted (each
 * keystroke is no query). Shown as the rows show paths: a byte that is not UTF-8 as \xNN,
 * read back so (`folderFilter`). */
export function useTypedFolder(folder: string): [string, (v: string) => void] {
  const [typed, setTyped] = useState(displayPath(folder));
  useEffect(() => setTyped(displayPath(folder)), [folder]);
  return [typed, setTyped];
}

/** A list filter's folder field, inside the page's form (whose submit applies it, through
 * `folderFilter(typed, roots)`): the input, "Show", and "Whole library" while a folder is
 * applied. `roots`: the library roots known (`useLibraryRoots`): the placeholder is a
 * folder of the first, and with exactly one, a folder may be typed relative to it. */
export function FolderField({ typed, setTyped, folder, onClear, helpId, help, roots }: {
  typed: string;
  setTyped: (v: string) => void;
  folder: string;
  onClear: () => void;
  helpId: string;
  help: string;
  roots: string[];
}) {
  const root = roots[0];
  const under = root ? folderPath(root) : "";
  const placeholder = root ? `${displayPath(under === "/" ? "" : under)}/…` : "/photos/2024";
  const relative = roots.length === 1
    ? ` A folder relative to the library (${displayPath(root)}) is taken under it.` : "";
  return (
    <>
      <label>
        Folder
        <input type="text" className="folder-input" value={typed} spellCheck={false}
               onChange={(e) => setTyped(e.target.value)} placeholder={placeholder}
               aria-describedby={helpId} />
      </label>
      <button type="submit">Show</button>
      {folder && <button type="button" onClick={onClear}>Whole library</button>}
      <span id={helpId} className="sr-only">{help}{relative}</span>
    </>
  );
}
