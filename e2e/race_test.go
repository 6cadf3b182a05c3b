//go:build race

package e2e

// Under -race the edgeproxy binary is built with -race too, so races in the
// engine under real traffic fail the test that provoked them.
const raceBuild = true
