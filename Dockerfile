# One image for every Spillway component: `spillway <command>` selects which.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY lib ./lib
COPY buffer-broker/src ./buffer-broker/src
COPY gateway/src ./gateway/src
COPY drainer/src ./drainer/src
COPY loadtest/src ./loadtest/src
ENTRYPOINT ["node", "bin/spillway.mjs"]
