# Callplane engine image. Build stage compiles the native Opus addon and
# installs production dependencies; the runtime stage is slim Debian with Node
# and the speech packages the offline adapters call (espeak-ng, pocketsphinx).
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm install --no-save --no-audit --no-fund tsx
COPY . .
RUN rm -rf test bench .ci

FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng pocketsphinx pocketsphinx-en-us sox ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
ENV NODE_ENV=production \
    DATA_DIR=/data \
    SIP_PORT=5060 \
    HTTP_PORT=8080
VOLUME ["/data"]
EXPOSE 5060/udp 5060/tcp 8080/tcp 40000-49999/udp
# tini forwards SIGTERM so the engine drains (BYE live calls) before exiting.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "main.ts"]
