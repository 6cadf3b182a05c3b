package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Bodies served by the loopback backend used by the proxy scenarios.
var (
	body100b = bytes.Repeat([]byte("b"), 100)
	body10k  = bytes.Repeat([]byte("k"), 10*1024)
)

// backendHandler serves /100b and /10k (anything else: 100 B) with
// Content-Length and keep-alive (net/http's default for HTTP/1.1).
func backendHandler() http.Handler {
	serve := func(body []byte) http.HandlerFunc {
		cl := strconv.Itoa(len(body))
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{cl}
			_, _ = w.Write(body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/10k", serve(body10k))
	mux.Handle("/100b", serve(body100b))
	mux.Handle("/", serve(body100b))
	return mux
}

// runBackend is the -backend mode: listen on addr (loopback), print
// "LISTENING host:port" on stdout for the harness, serve until killed.
func runBackend(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "LISTENING %s\n", l.Addr())
	srv := &http.Server{
		Handler:           backendHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	return srv.Serve(l)
}
