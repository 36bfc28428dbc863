import { createReadStream, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";

/** By the requested file's extension: a Map, as is every lookup by a name the request chose (no inherited property answers). */
const contentTypes: ReadonlyMap<string, string> = new Map([
  [".html", "text/html; charset=utf-8"],
  [".js", "text/javascript; charset=utf-8"],
  [".css", "text/css; charset=utf-8"],
  [".svg", "image/svg+xml"],
  [".png", "image/png"],
  [".ico", "image/x-icon"],
  [".json", "application/json"],
]);

/**
 * Serves the built page from `dir` for GET and HEAD: `/` is index.html, a
 * path outside `dir` or not a file is 404, a path that does not decode
 * (`/%zz`) is 400. Hashed assets may be cached for good; index.html is
 * checked again each time.
 */
export function serveStatic(dir: string, req: IncomingMessage, res: ServerResponse): void {
  const path = decodedPath(req.url ?? "/");
  if (path === undefined) {
    res.writeHead(400, { "content-type": "text/plain" }).end("not a valid path: bad percent-encoding");
    return;
  }
  const file = normalize(join(dir, path === "/" ? "index.html" : path));
  let size: number | undefined;
  try {
    const stat = statSync(file);
    if (stat.isFile() && file.startsWith(dir + sep)) size = stat.size;
  } catch {
    size = undefined;
  }
  if (size === undefined) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    return;
  }
  res.writeHead(200, {
    "content-type": contentTypes.get(extname(file)) ?? "application/octet-stream",
    "content-length": size,
    "cache-control": path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
  });
  if (req.method === "HEAD") res.end();
  else createReadStream(file).pipe(res);
}

function decodedPath(url: string): string | undefined {
  try {
    return decodeURIComponent(url.split("?")[0]!);
  } catch {
    return undefined;
  }
}
