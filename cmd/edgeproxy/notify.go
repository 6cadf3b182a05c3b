package main

import (
	"net"
	"os"
)

// sdNotify sends a state line to systemd's notification socket when the
// service runs with Type=notify (sd_notify(3)); without NOTIFY_SOCKET it does
// nothing. It is what lets systemd follow a binary upgrade: the new process
// says MAINPID=<its pid> (with NotifyAccess=all), so when the old one exits
// the unit keeps running on the new one instead of stopping it.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}
