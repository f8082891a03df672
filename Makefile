# Two commands for a new machine: `make start` runs the engine, `make test` runs
# the whole suite. Both install what they need first and skip what is present.

APT_PACKAGES := sip-tester rtpengine-daemon baresip espeak-ng pocketsphinx pocketsphinx-en-us postgresql sox kamailio tcpdump
NPM_STAMP := node_modules/.callplane-installed

.PHONY: start test deps apt typecheck layers bench bench-quick sip-server

start: deps
	npx tsx main.ts

test: deps
	npx tsc --noEmit
	npm run --silent layers
	npx tap

layers: deps
	npm run --silent layers

sip-server: deps
	npx tsx sip/server/main.ts

bench: deps
	npx tsx bench/run.ts --full

bench-quick: deps
	npx tsx bench/run.ts

deps: apt $(NPM_STAMP)

# Debian packages: checked one by one with dpkg-query (fast), installed only when missing.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

# npm ci also builds @discordjs/opus from source: its install script is
# approved in package.json "allowScripts". `tap build` compiles tap's plugin set
# from .taprc once, so the first test run does not rebuild mid-run. The PGlite
# template makes the first start skip initdb (store/pglite-template.ts).
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	npx tap build >/dev/null
	npx tsx store/pglite-template.ts
	@touch $@
