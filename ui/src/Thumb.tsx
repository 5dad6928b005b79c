import { useEffect, useRef, useState } from "react";
import { getApiKey, thumbnailUrl } from "./api";
import { useNearViewport } from "./hooks";
import { displayName } from "./logic";

interface Props {
  member: { path: string; assetId?: string | null };
  localMode: boolean;
  size?: number;
}

/** A member's picture. With a session cookie a plain <img> is enough (the browser caches it,
 * and loads it lazily); with a pasted API key the image is fetched with the x-api-key header
 * instead of putting the key in a URL that proxies would log, once it is near the viewport:
 * a page of 200 groups must not ask for every picture at once. */
export function Thumb({ member, localMode, size = 320 }: Props) {
  const url = thumbnailUrl(member, localMode, size);
  const key = getApiKey();
  const [src, setSrc] = useState<string | null>(key ? null : url);
  const [failed, setFailed] = useState(false);
  const name = displayName(member.path);
  const box = useRef<HTMLDivElement>(null);
  const near = useNearViewport(box, Boolean(key && url));

  useEffect(() => {
    setFailed(false);
    if (!url) return;
    if (!key) {
      setSrc(url);
      return;
    }
    if (!near) return;
    let live = true;
    let objectUrl: string | null = null;
    // Aborted when the card goes (a page turned while thumbnails load): a blob that still
    // arrives is not made into a URL nobody would revoke.
    const abort = new AbortController();
    fetch(url, { headers: { "x-api-key": key }, signal: abort.signal })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
      .then((b) => {
        if (!live) return;
        objectUrl = URL.createObjectURL(b);
        setSrc(objectUrl);
      })
      .catch(() => live && setFailed(true));
    return () => {
      live = false;
      abort.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [url, key, near]);

  if (!url || failed) {
    return (
      <div className="thumb thumb-missing" role="img" aria-label={`No preview of ${name}`}>
        <span>No preview</span>
      </div>
    );
  }
  return (
    <div className="thumb" ref={box}>
      {src && (
        <img src={src} alt={`Preview of ${name}`} loading="lazy" decoding="async"
             onError={() => setFailed(true)} />
      )}
    </div>
  );
}
