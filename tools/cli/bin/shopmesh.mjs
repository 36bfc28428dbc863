#!/usr/bin/env node
// The shopmesh command. Its code is TypeScript, run through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
