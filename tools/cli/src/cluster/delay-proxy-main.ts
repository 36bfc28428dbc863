// A delay proxy as a process of a cluster host: LISTEN, UPSTREAM and CONTROL
// as host:port; logs a ready line once both listeners are up.
import { startDelayProxy } from "./delay-proxy.js";

const address = (name: string) => {
  const value = process.env[name] ?? "";
  const colon = value.lastIndexOf(":");
  const port = Number(value.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) throw new Error(`${name}="${value}" is not host:port`);
  return { host: value.slice(0, colon), port };
};

const proxy = await startDelayProxy({
  listen: address("LISTEN"),
  upstream: address("UPSTREAM"),
  control: address("CONTROL"),
});
process.stdout.write(`${JSON.stringify({ msg: "ready", port: proxy.port, controlPort: proxy.controlPort })}\n`);
process.on("SIGTERM", () => void proxy.close().then(() => process.exit(0)));
