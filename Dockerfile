# One image for every shopmesh service, compiled JavaScript on Node.js 24.18.1,
# the 24 release the tests run on (better-sqlite3 12.x built for a later 24,
# 24.21, aborts the process when a statement is freed; see the README):
#
#   docker build -t shopmesh .
#   docker run -e SERVICE=products -e TLS_CERT=... -e TLS_KEY=... -e TLS_CA=... shopmesh
#
# SERVICE picks the service (users, products, orders or user-orders). The
# build stage runs what `npm run build` and tools/cli/test/compiled-service.test.ts
# run: compile, stage the compiled workspaces (scripts/stage-production.mjs),
# install their production dependencies. better-sqlite3's native module is
# built there, on the same base as the runtime stage.

FROM node:24.18.1-slim AS build
# A compiler for better-sqlite3 when no prebuilt binary fits the platform.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm install --no-audit --no-fund
RUN npm run build
RUN node scripts/stage-production.mjs /app
WORKDIR /app
RUN npm install --omit=dev --no-audit --no-fund

FROM node:24.18.1-slim
ENV NODE_ENV=production \
  HOST=0.0.0.0 \
  HEALTH_PORT=50050 \
  METRICS_HOST=0.0.0.0 \
  DATA_DIR=/data
WORKDIR /app
# Owned by root and read-only to the service: it writes only under DATA_DIR.
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
# The node image's unprivileged user (uid 1000).
USER 1000:1000
VOLUME ["/data"]
EXPOSE 50050 50051 50052 50053 50054
# grpc.health.v1 on the plaintext health port, with the compiled check (grpc-js).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "services/chassis/dist/health-check.js"]
# The heap flags every service starts with elsewhere on this Node.js release
# (npm start, the tests, the bench), so that a container's memory under load is
# what the bench measured; SHOPMESH_SERVICE_NODE_FLAGS replaces them as it does
# there (empty: none).
ENTRYPOINT ["/bin/sh", "-c", "exec node ${SHOPMESH_SERVICE_NODE_FLAGS---max-semi-space-size=16 --heap-growing-percent=100} \"services/${SERVICE:?set SERVICE to users, products, orders or user-orders}/dist/main.js\""]
