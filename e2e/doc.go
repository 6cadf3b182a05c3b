// Package e2e holds end-to-end and differential tests: the edgeproxy binary
// and real nginx run the same configuration file and answer the same
// requests; the tests compare what a client sees.
package e2e
