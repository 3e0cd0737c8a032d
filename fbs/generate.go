// Package fbs holds the FlatBuffers schemas of the FLATBUFFER wire format and,
// in its subpackages, the Go code flatc generates from them (checked in).
//
// The original event-emitter renumbered its enums between releases, so there
// is one schema per numbering; their tables are identical:
//
//	events.fbs         numbering 20.1 (default)  -> package events201
//	events-bridge.fbs  numbering bridge          -> package eventsbridge
//	events-26.fbs      numbering 26              -> package events26
//
// Regenerate with `go generate ./fbs/...` (needs flatc, Debian package
// flatbuffers-compiler); TestGeneratedCodeIsCurrent fails when the checked-in
// code differs from what flatc makes of the schemas.
package fbs

//go:generate flatc --go --no-warnings --go-namespace events201 -o . events.fbs
//go:generate flatc --go --no-warnings --go-namespace eventsbridge -o . events-bridge.fbs
//go:generate flatc --go --no-warnings --go-namespace events26 -o . events-26.fbs
