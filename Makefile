# edgeproxy — two commands set up a fresh Debian machine:
#   make run    runs edgeproxy (on the built-in default config unless CONF=... is given)
#   make test   installs what the tests need, then runs the whole suite
GO      ?= go
BIN     := bin/edgeproxy
CONF    ?=
PKGS    := ./...
APT_PKGS := nginx wrk gunicorn python3-flask redis-server

.PHONY: build run test deps vet fuzz soak bench clean

build:
	$(GO) build -o $(BIN) ./cmd/edgeproxy

run: build
	./$(BIN) $(if $(CONF),-c $(CONF),)

# deps installs the reference nginx and the load/backends tools the tests
# compare against, only when something is missing.
deps:
	@missing=""; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v gunicorn >/dev/null 2>&1 || missing="$$missing gunicorn"; \
	python3 -c 'import flask' >/dev/null 2>&1 || missing="$$missing python3-flask"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	fi
	@# Debian starts nginx (port 80) and redis (6379) after installing them; the tests run their own.
	@(systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || true) >/dev/null 2>&1
	@(systemctl stop redis-server 2>/dev/null || service redis-server stop 2>/dev/null || true) >/dev/null 2>&1

vet:
	@test -z "$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go'))" || (gofmt -l $$(git ls-files -co --exclude-standard '*.go'); exit 1)
	$(GO) vet $(PKGS)

test: deps vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each (seed corpora also run in `make test`).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./http1 -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./http1 -run '^$$' -fuzz '^FuzzChunked$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./static -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime $(FUZZTIME)
	$(GO) test ./config -run '^$$' -fuzz '^FuzzLex$$' -fuzztime $(FUZZTIME)
	$(GO) test ./static -run '^$$' -fuzz '^FuzzParseHTTPTime$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cachestore -run '^$$' -fuzz '^FuzzFreshness$$' -fuzztime $(FUZZTIME)
	$(GO) test ./limiter -run '^$$' -fuzz '^FuzzReqZone$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline -run '^$$' -fuzz '^FuzzConn$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tlsterm -run '^$$' -fuzz '^FuzzFormatDN$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline -run '^$$' -fuzz '^FuzzAEQ$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline -run '^$$' -fuzz '^FuzzCacheHeaderParsers$$' -fuzztime $(FUZZTIME)
	$(GO) test ./snapshot -run '^$$' -fuzz '^FuzzCPUAffinity$$' -fuzztime $(FUZZTIME)
	$(GO) test ./tuning -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME)
	$(GO) test ./cmd/edgeproxy -run '^$$' -fuzz '^FuzzParseInherit$$' -fuzztime $(FUZZTIME)

# soak runs the mixed-traffic soak test (faults, reloads, abandoned
# clients) for SOAK (default 30m) against a normal (non-race) build.
SOAK ?= 30m
soak: deps
	SOAK=$(SOAK) $(GO) test ./e2e -run '^TestSoak$$' -count=1 -v -timeout 0

bench: build
	$(GO) run ./bench -edgeproxy $(BIN)

clean:
	rm -rf bin
