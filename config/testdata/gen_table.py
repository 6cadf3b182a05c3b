#!/usr/bin/env python3
"""Bootstrap directives.go from probe_directives.py output (nginx 1.22 as
installed). One-shot: after generation, directives.go is the source of truth
and is edited by hand (support statuses flip as features land).
    python3 gen_table.py directives.json > ../directives.go
"""
import fnmatch, json, sys

CTX = [("main", "CtxMain"), ("events", "CtxEvents"), ("http", "CtxHTTP"),
       ("server", "CtxServer"), ("location", "CtxLocation"),
       ("sif", "CtxServerIf"), ("lif", "CtxLocationIf"),
       ("limit_except", "CtxLimitExcept"), ("upstream", "CtxUpstream")]
SHORT = {
    frozenset(["http", "server", "location"]): "ctxHSL",
    frozenset(["http", "server", "location", "lif"]): "ctxHSLIf",
    frozenset(["http", "server", "location", "lif", "sif"]): "ctxHSLAll",
    frozenset(["http", "server"]): "ctxHS",
    frozenset(c for c, _ in CTX): "ctxAny",
}
BODY = {"events": "CtxEvents", "http": "CtxHTTP", "server": "CtxServer",
        "location": "CtxLocation", "if": "CtxLocationIf",
        "limit_except": "CtxLimitExcept", "upstream": "CtxUpstream"}

IMPLEMENTED = """daemon worker_processes pid error_log worker_rlimit_nofile include
events http worker_connections types default_type tcp_nodelay
keepalive_timeout keepalive_requests client_header_timeout client_body_timeout
send_timeout client_header_buffer_size large_client_header_buffers
client_max_body_size client_body_buffer_size server_tokens charset etag
if_modified_since server listen server_name location root alias index
try_files autoindex return add_header expires error_page internal
log_not_found absolute_redirect port_in_redirect server_name_in_redirect
merge_slashes ignore_invalid_headers underscores_in_headers
recursive_error_pages""".split()
ACCEPTED = """sendfile tcp_nopush multi_accept use ssl_prefer_server_ciphers
*_temp_path open_file_cache* server_names_hash_* types_hash_* variables_hash_*
*_hash_max_size *_hash_bucket_size aio aio_write directio directio_alignment
output_buffers accept_mutex* thread_pool gzip_buffers lingering_*
reset_timedout_connection worker_priority timer_resolution pcre_jit
msie_padding keepalive_disable user worker_cpu_affinity worker_rlimit_core
working_directory lock_file debug_points worker_aio_requests debug_connection
sendfile_max_chunk read_ahead connection_pool_size request_pool_size
open_log_file_cache master_process""".split()
# Probe could not find an accepted value to repeat; from nginx source.
DUP_OVERRIDE = {"pid": True, "user": True, "lock_file": True,
                "working_directory": True, "worker_rlimit_core": True,
                "worker_cpu_affinity": True, "thread_pool": False,
                "env": False, "load_module": False}


def support(name):
    if name in IMPLEMENTED:
        return "Implemented"
    if any(fnmatch.fnmatchcase(name, p) for p in ACCEPTED):
        return "Accepted"
    return "NotImplemented"


def arity(info):
    v = info["valid"]
    parts = []
    if info["flag"]:
        parts.append("Flag")
    elif v == list(range(0, 9)):
        parts.append("AnyArgs")
    elif v == list(range(1, 9)):
        parts.append("OneMore")
    elif v == list(range(2, 9)):
        parts.append("TwoMore")
    else:
        named = {(1, 2): "Take12", (1, 3): "Take13", (2, 3): "Take23",
                 (1, 2, 3): "Take123", (1, 2, 3, 4): "Take1234"}
        t = tuple(v)
        if t in named:
            parts.append(named[t])
        else:
            parts += ["NoArgs" if n == 0 else "Take%d" % n for n in v]
    if info["block"]:
        parts.append("Block")
    return "|".join(parts) if parts else "0"


def main():
    data = json.load(open(sys.argv[1]))
    undetermined = []
    print("// Bootstrapped by testdata/gen_table.py; maintained by hand since.\n")
    print("package config\n")
    print("// directives is the directive table: every directive of the nginx 1.22 build")
    print("// we compare with (core, events, http and its static modules, upstream")
    print("// balancers). Flip Support as edgeproxy gains features; keep one line per")
    print("// directive. Columns: name, support, contexts, arity, unique (repeat in the")
    print("// same block is \"is duplicate\"), block body context.")
    print("var directives = []Spec{")
    for name in sorted(data):
        groups = {}
        for ctx, info in data[name].items():
            key = (info["block"], tuple(info["valid"]), info["flag"])
            groups.setdefault(key, []).append((ctx, info))
        for key, items in sorted(groups.items(), key=lambda kv: [c for c, _ in CTX].index(kv[1][0][0]) if False else 0):
            ctxs = frozenset(c for c, _ in items)
            cexpr = SHORT.get(ctxs) or "|".join(g for c, g in CTX if c in ctxs)
            info = items[0][1]
            if name in DUP_OVERRIDE:
                dup = DUP_OVERRIDE[name]
            elif info["block"]:
                dup = name in ("http", "events")
            else:
                samples = [i for _, i in items if "sample" in i]
                dup = any(i["dup"] for i in samples)
                if not samples:
                    undetermined.append(name)
            body = ", noBody"
            if info["block"]:
                body = ", " + BODY.get(name, "CtxFreeform")
            print('\t{"%s", %s, %s, %s, %s%s},' % (
                name, support(name), cexpr, arity(info), "true" if dup else "false", body))
    print("}")
    print("undetermined dup:", " ".join(undetermined), file=sys.stderr)


main()
