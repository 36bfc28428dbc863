import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { meshIdentityUri } from "@shopmesh/sdk";

/** The files of one identity issued by the development CA. */
export interface IdentityFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** What {@link ensureDevelopmentCertificates} made or found. */
export interface DevelopmentCertificates {
  dir: string;
  caFile: string;
  /** Each identity's files, by name. */
  identities: Record<string, IdentityFiles>;
  /** The identities whose certificate was issued (or renewed) by this call. */
  issued: string[];
}

/** Lifetimes, in days: a certificate with less than a third of its life left is renewed. */
const caDays = 3650;
const leafDays = 90;
const renewWithinMs = (leafDays / 3) * 86_400_000;

/**
 * Makes, under `dir`, a development CA (ca.pem, ca-key.pem) and one
 * certificate per identity (`<name>.pem`, `<name>-key.pem`) whose subject
 * alternative names are `spiffe://shopmesh.local/<name>`, DNS `localhost`
 * and `<name>`, and IP 127.0.0.1, for both server and client use. Files that
 * exist and are still good are reused; a certificate that has expired, is
 * close to expiring, or was not issued by the CA present is issued again.
 * Keys are written 0600. Uses the openssl command-line tool.
 */
export function ensureDevelopmentCertificates(dir: string, names: readonly string[]): DevelopmentCertificates {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, "ca.pem");
  const caKeyFile = join(dir, "ca-key.pem");
  const issued: string[] = [];
  if (!usable(caFile, caKeyFile, undefined, undefined)) {
    const config = join(dir, "ca.cnf");
    writeFileSync(
      config,
      [
        "[req]",
        "distinguished_name = dn",
        "prompt = no",
        "x509_extensions = ca",
        "[dn]",
        "CN = shopmesh development CA",
        "[ca]",
        "basicConstraints = critical, CA:TRUE, pathlen:0",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
        "",
      ].join("\n"),
    );
    openssl([
      "req",
      "-x509",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${caKeyFile}.new`,
      "-out",
      `${caFile}.new`,
      "-days",
      String(caDays),
      "-config",
      config,
    ]);
    rmSync(config, { force: true });
    chmodSync(`${caKeyFile}.new`, 0o600);
    renameSync(`${caKeyFile}.new`, caKeyFile);
    renameSync(`${caFile}.new`, caFile);
  }
  const ca = new X509Certificate(readFileSync(caFile));
  const identities: Record<string, IdentityFiles> = {};
  for (const name of names) {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`not an identity name: ${JSON.stringify(name)}`);
    const certFile = join(dir, `${name}.pem`);
    const keyFile = join(dir, `${name}-key.pem`);
    identities[name] = { certFile, keyFile, caFile };
    if (usable(certFile, keyFile, ca, name)) continue;
    issue(dir, name, certFile, keyFile, caFile, caKeyFile, ["localhost", name], ["127.0.0.1"]);
    issued.push(name);
  }
  return { dir, caFile, identities, issued };
}

/** Whether a certificate exists, is not near expiry, and (for a leaf) was issued by `ca` and names `name`. */
function usable(certFile: string, keyFile: string, ca: X509Certificate | undefined, name: string | undefined): boolean {
  if (!existsSync(certFile) || !existsSync(keyFile)) return false;
  try {
    const certificate = new X509Certificate(readFileSync(certFile));
    if (Date.parse(certificate.validTo) - Date.now() < renewWithinMs) return false;
    if (ca !== undefined && !certificate.verify(ca.publicKey)) return false;
    if (name !== undefined && !certificate.subjectAltName?.includes(meshIdentityUri(name))) return false;
    return true;
  } catch {
    return false;
  }
}

/** Where {@link issueHostCertificate} puts a host's certificate. */
export interface HostCertificateRequest {
  /** The identity the certificate proves: `spiffe://shopmesh.local/<identity>`. */
  identity: string;
  /** File name stem: `<file>.pem` and `<file>-key.pem`. */
  file: string;
  /** DNS names beside the identity's own name. */
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/**
 * Issues, with the development CA under `dir` (made by
 * {@link ensureDevelopmentCertificates}), a certificate for one host that
 * runs `identity`: several hosts may prove the same identity (replicas),
 * each under its own names and addresses. Always issues anew.
 */
export function issueHostCertificate(dir: string, request: HostCertificateRequest): IdentityFiles {
  if (!/^[a-z][a-z0-9-]*$/.test(request.file)) throw new Error(`not a file name stem: ${JSON.stringify(request.file)}`);
  const caFile = join(dir, "ca.pem");
  const certFile = join(dir, `${request.file}.pem`);
  const keyFile = join(dir, `${request.file}-key.pem`);
  const dnsNames = [...new Set([request.identity, ...request.dnsNames])];
  issue(dir, request.identity, certFile, keyFile, caFile, join(dir, "ca-key.pem"), dnsNames, request.ipAddresses);
  return { certFile, keyFile, caFile };
}

function issue(
  dir: string,
  name: string,
  certFile: string,
  keyFile: string,
  caFile: string,
  caKeyFile: string,
  dnsNames: readonly string[],
  ipAddresses: readonly string[],
): void {
  const stem = certFile.slice(dir.length + 1, -".pem".length);
  const csr = join(dir, `${stem}.csr`);
  const extensions = join(dir, `${stem}.ext`);
  const alternativeNames = [
    `URI:${meshIdentityUri(name)}`,
    ...dnsNames.map((dns) => `DNS:${dns}`),
    ...ipAddresses.map((address) => `IP:${address}`),
  ];
  writeFileSync(
    extensions,
    [
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature",
      "extendedKeyUsage = serverAuth, clientAuth",
      `subjectAltName = ${alternativeNames.join(", ")}`,
      "",
    ].join("\n"),
  );
  try {
    openssl([
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${keyFile}.new`,
      "-out",
      csr,
      "-subj",
      `/CN=${name}`,
    ]);
    chmodSync(`${keyFile}.new`, 0o600);
    openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      caFile,
      "-CAkey",
      caKeyFile,
      "-set_serial",
      `0x${randomSerial()}`,
      "-days",
      String(leafDays),
      "-extfile",
      extensions,
      "-out",
      `${certFile}.new`,
    ]);
    // The key first: a server reading the pair between the two renames keeps its last good pair (CertificateFiles).
    renameSync(`${keyFile}.new`, keyFile);
    renameSync(`${certFile}.new`, certFile);
  } finally {
    rmSync(csr, { force: true });
    rmSync(extensions, { force: true });
  }
}

function randomSerial(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("")
    .replace(/^[89a-f]/, "1");
}

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new Error("the openssl command is needed to make the development certificates, and was not found");
    throw new Error(`openssl ${args[0]} failed: ${stderr || String(error)}`);
  }
}
