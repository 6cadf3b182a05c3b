package e2e

import "testing"

const mapConf = `
worker_processes 1;
events { worker_connections 1024; }
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    map $uri $section {
        default       other;
        /exact        exact;
        ~^/api/(v[0-9]+)/  api;
        ~*\.PNG$      image;
        \~tilde       tilde;
    }
    map $section $nested {
        api     "api via $connection_upgrade";
        default "-";
    }
    server {
        listen 127.0.0.1:{{.Port}};
        location / { return 200 "$connection_upgrade $section $nested\n"; }
    }
}
`

// map: exact keys, regexes in order (case-insensitive ~*), default, values
// with variables, a map reading another map — as nginx evaluates them.
func TestMapDifferential(t *testing.T) {
	ngx, edge := pair(t, mapConf, t.TempDir())
	differential(t, ngx, edge, []dcase{
		{name: "default", raw: get("/x"), status: 200},
		{name: "exact", raw: get("/exact"), status: 200},
		{name: "regex", raw: get("/api/v2/items"), status: 200},
		{name: "regex-ci", raw: get("/img/a.png"), status: 200},
		{name: "escaped-tilde", raw: get("/~tilde"), status: 200},
		{name: "upgrade", raw: get("/api/v1/ws", "Upgrade: websocket\r\n"), status: 200},
	})
}
