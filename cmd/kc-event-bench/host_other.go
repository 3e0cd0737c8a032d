//go:build !linux

package main

// cpuModel returns "unknown CPU": procfs reads /proc/cpuinfo on Linux only.
func (h host) cpuModel() string { return "unknown CPU" }
