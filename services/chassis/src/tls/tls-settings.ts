import { readFileSync } from "node:fs";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { ConfigError, envReader } from "../config.js";

type Env = Record<string, string | undefined>;

/** How a service's port is secured. */
export type TlsSettings =
  | { mode: "off" }
  | {
      /** TLS on every call; a mesh service's certificate, when a caller presents one, names it. */
      mode: "mutual";
      /** PEM certificate of this service (TLS_CERT), signed by the mesh's CA. */
      certFile: string;
      /** Its private key (TLS_KEY). */
      keyFile: string;
      /** The mesh's CA certificate (TLS_CA): peers' certificates must chain to it. */
      caFile: string;
      /** How often the three files are read again, so that renewed ones take effect (TLS_RELOAD_INTERVAL), default 1 min. */
      reloadIntervalMs: number;
    };

const fileVariables = ["TLS_CERT", "TLS_KEY", "TLS_CA"] as const;

/**
 * Reads TLS, TLS_CERT, TLS_KEY and TLS_CA. A service serves TLS unless it is
 * told TLS=off: without the three paths it refuses to start, naming the
 * first one missing. The local mesh (npm start, the tests, the tools) makes
 * a development CA and gives every service its paths.
 */
export function readTlsSettings(env: Env = process.env): TlsSettings {
  const read = envReader(env);
  if (!read.bool("TLS", true)) return { mode: "off" };
  const [certFile, keyFile, caFile] = fileVariables.map((name) => {
    const path = read.optionalString(name);
    if (path === undefined)
      throw new ConfigError(name, "", "the path of a PEM file (TLS_CERT, TLS_KEY, TLS_CA), or TLS=off for plaintext");
    return path;
  }) as [string, string, string];
  const settings = {
    mode: "mutual" as const,
    certFile,
    keyFile,
    caFile,
    reloadIntervalMs: read.durationMs("TLS_RELOAD_INTERVAL", "1m", { min: 100, max: 24 * 3_600_000 }),
  };
  readTlsFiles(settings);
  return settings;
}

/** The three PEM files, checked: the certificates parse and the key belongs to the certificate. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Reads and checks the files; a ConfigError names the variable of the one that is unusable. */
export function readTlsFiles(settings: { certFile: string; keyFile: string; caFile: string }): TlsFiles {
  const readAs = (variable: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(
        variable,
        path,
        `a readable PEM file (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`,
      );
    }
  };
  const cert = readAs("TLS_CERT", settings.certFile);
  const key = readAs("TLS_KEY", settings.keyFile);
  const ca = readAs("TLS_CA", settings.caFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError("TLS_CERT", settings.certFile, "a PEM certificate");
  }
  try {
    new X509Certificate(ca);
  } catch {
    throw new ConfigError("TLS_CA", settings.caFile, "a PEM certificate");
  }
  let matches = false;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new ConfigError("TLS_KEY", settings.keyFile, "a PEM private key");
  }
  if (!matches) throw new ConfigError("TLS_KEY", settings.keyFile, `the private key of ${settings.certFile}`);
  return { cert, key, ca };
}
