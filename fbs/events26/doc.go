// Package events26 is the FlatBuffers code flatc generates from ../events-26.fbs:
// the Event and AdminEvent tables of the FLATBUFFER wire format with the enum
// numbering 26 (the 26.x releases of the original).
// Every other file of this package is generated; do not edit them.
package events26
