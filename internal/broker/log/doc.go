// Package log is the on-disk log of one partition replica of the bundled
// broker, laid out as Apache Kafka's.
//
// # Files
//
// A log is a directory of segments. A segment holds the batches from its
// base offset up to the next segment's base offset and is made of:
//
//	00000000000000000000.log        Kafka v2 record batches, back to back,
//	                                byte for byte as produced (after
//	                                validation) except for the base offset
//	                                and leader epoch the leader assigns
//	00000000000000000000.index      sparse offset index: an entry every
//	                                Config.IndexIntervalBytes of log
//	00000000000000000000.timeindex  the largest timestamp at each index entry
//	00000000000000000000.txnindex   the segment's aborted transactions, one
//	                                34-byte entry per abort marker, as
//	                                Kafka's (see AbortedTxn); appended by
//	                                the partition, fsynced at the roll
//
// and, named by an offset rather than a segment, <offset>.snapshot files:
// the partition's producer state before that offset, written atomically at
// rolls and clean shutdown (the encoding is the partition's). Truncation
// cuts the .txnindex of the segment it cuts into and deletes the snapshots
// past the new end; retention deletes a segment's .txnindex with it and the
// snapshots below the new start; TruncateFullyAndStartAt deletes them all.
// Neither kind is trusted blindly: the partition checks them against each
// other and rebuilds both from the batches when they disagree.
//
// File names are the base offset zero-padded to 20 digits, so they sort as
// the offsets do. The last segment is the active one; appends go there,
// and it is rolled (a new segment started) when the next batch would make
// it larger than Config.SegmentBytes. The directory also holds
// leader-epoch-checkpoint, the start offset of every leader epoch. The byte
// formats are documented in format.go.
//
// The index of every segment is kept in memory: a read binary-searches it
// for the last indexed batch at or before the wanted offset, then walks
// batch headers forward from there (at most about IndexIntervalBytes) and
// reads the batches with pread. Index files are written when a segment is
// rolled; the active segment's index exists only in memory.
//
// Indexes and the epoch checkpoint are derived data: whenever they are
// missing or do not match the log they are rebuilt from the batches, and
// they never make Open fail.
//
// # Recovery
//
// Open recovers the directory so that a crash (kill -9) at any moment
// leaves a log that opens with every fully written batch intact:
//
//  1. Remove leftover temporary files (*.tmp, *.swap) and index files whose
//     .log file is gone. List the .log files and sort them by base offset.
//  2. For each segment but the last: load its index files if present and
//     sane (whole entries, increasing offsets and positions inside the
//     file, first batch at the base offset), then verify the batches from
//     the last index entry to the end of the file; if the index files are
//     missing or fail these checks, verify every batch and rewrite them.
//     Verifying a batch means checking its header, CRC-32C and record
//     framing, and that its base offset continues the previous batch. If
//     the segment's data is damaged, or it does not end where the next
//     segment starts, it becomes the last segment: the segments after it
//     are deleted, as Kafka deletes everything after the first corruption.
//  3. For the last (active) segment: verify every batch from its start. At
//     the first torn or bad batch, truncate the file there, logging a
//     slog warning with the byte position and the number of bytes cut.
//     Rebuild its index in memory and delete its stale index files.
//  4. If there is no segment, create an empty one at offset 0. The start
//     offset is the first segment's base offset, the end offset the
//     offset after the last batch.
//  5. Load the leader-epoch checkpoint, drop entries at or past the end
//     offset and move the first entry up to the start offset; keep it only
//     if every entry starts at a batch of its epoch right after a batch of
//     an older one, and the last batch's epoch is the latest entry.
//     Otherwise rebuild it from the batch headers. Write it back if it
//     changed.
//
// Changes on disk are ordered so that every crash leaves one of these
// recoverable states: Truncate deletes segments newest first, retention
// oldest first, and index and checkpoint files are replaced by renaming a
// fsynced temporary file. TruncateFullyAndStartAt(n) first truncates at n
// if the log holds n, then creates the empty segment n (and syncs the
// directory), then deletes the old segments oldest first. A crash in
// between leaves either old segments followed by segment n, which step 2
// reads as a log ending where the old segments end (segment n does not
// continue them and is deleted; or, when the old log ends exactly at n, it
// is an empty last segment), or segment n followed by old segments, when n
// is below them, which step 2 reads as the empty log at n. Either way the
// log opens as a range of the old log or as the new empty log at n, never
// as a log restarting anywhere else.
//
// # Durability
//
// Appends are written to the files but not fsynced unless Config.FlushMessages
// (Kafka's flush.messages) asks for it; a roll, Sync and Close fsync. Close
// is a clean shutdown; Abandon is a crash (kill -9): it drops the file
// handles and writes nothing, leaving in the files what the OS already has.
// A Disk (Config.Disk) records which bytes each file had when it was last
// fsynced and which file names a directory fsync made durable;
// Disk.PowerLoss cuts the files back to that, which is what a power loss
// leaves. Every file the log creates, syncs, truncates, renames or removes
// goes through it.
//
// # Ranges and ownership
//
// The log holds offsets [StartOffset(), EndOffset()). Reads take offsets in
// [StartOffset(), EndOffset()] and return ErrOffsetOutOfRange outside it;
// Read returns a copy the caller owns. ReadSlices returns file ranges
// instead, for sendfile, which the caller must release.
package log
