package main

import (
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// A second checkout's `make run` finds the default ports taken: dev moves
// to free ones and says so, instead of failing to listen.
func TestDevMovesToFreePortsWhenDefaultsAreTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	free := probe.Addr().String()
	probe.Close()

	for _, k := range []string{"SB_TEST_TAKEN_ADDR", "SB_TEST_FREE_ADDR", "SB_TEST_SET_ADDR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("SB_TEST_SET_ADDR", "127.0.0.1:7")
	moved, err := pickDevAddrs([]devPort{
		{"SB_TEST_TAKEN_ADDR", taken.Addr().String()}, {"SB_TEST_FREE_ADDR", free}, {"SB_TEST_SET_ADDR", "127.0.0.1:8"},
	})
	require.NoError(t, err)
	got := os.Getenv("SB_TEST_TAKEN_ADDR")
	require.NotEqual(t, taken.Addr().String(), got)
	ln, err := net.Listen("tcp", got)
	require.NoError(t, err, "the moved address is free")
	ln.Close()
	require.Equal(t, []string{"SB_TEST_TAKEN_ADDR=" + got + " (" + taken.Addr().String() + " is taken)"}, moved)
	require.Equal(t, free, os.Getenv("SB_TEST_FREE_ADDR"), "a free default is kept")
	require.Equal(t, "127.0.0.1:7", os.Getenv("SB_TEST_SET_ADDR"), "the user's setting is kept")
}
