// Package events201 is the FlatBuffers code flatc generates from ../events.fbs:
// the Event and AdminEvent tables of the FLATBUFFER wire format with the enum
// numbering 20.1 (the default; releases 20.0.3 to 20.1.0 of the original).
// Every other file of this package is generated; do not edit them.
package events201
