import { useEffect, useState } from "react";
import { getApiKey, thumbnailUrl } from "./api";
import { basename } from "./logic";

interface Props {
  member: { path: string; assetId?: string | null };
  localMode: boolean;
  size?: number;
}

/** A member's picture. With a session cookie a plain <img> is enough (and the browser caches
 * it); with a pasted API key the image is fetched with the x-api-key header instead of putting
 * the key in a URL that proxies would log. */
export function Thumb({ member, localMode, size = 320 }: Props) {
  const url = thumbnailUrl(member, localMode, size);
  const key = getApiKey();
  const [src, setSrc] = useState<string | null>(key ? null : url);
  const [failed, setFailed] = useState(false);
  const name = basename(member.path);

  useEffect(() => {
    setFailed(false);
    if (!url) return;
    if (!key) {
      setSrc(url);
      return;
    }
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
  }, [url, key]);

  if (!url || failed) {
    return (
      <div className="thumb thumb-missing" role="img" aria-label={`No preview of ${name}`}>
        <span>No preview</span>
      </div>
    );
  }
  return (
    <div className="thumb">
      {src && (
        <img src={src} alt={`Preview of ${name}`} loading="lazy" decoding="async"
             onError={() => setFailed(true)} />
      )}
    </div>
  );
}
