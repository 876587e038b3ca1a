package ipp

import (
	"fmt"
	"strings"
)

// PrinterState is printer-state (RFC 8011 §5.4.11).
type PrinterState int

// Printer states.
const (
	PrinterIdle       PrinterState = 3
	PrinterProcessing PrinterState = 4
	PrinterStopped    PrinterState = 5
)

func (s PrinterState) String() string {
	switch s {
	case PrinterIdle:
		return "idle"
	case PrinterProcessing:
		return "processing"
	case PrinterStopped:
		return "stopped"
	}
	return fmt.Sprintf("printer-state(%d)", int(s))
}

// JobState is job-state (RFC 8011 §5.3.7).
type JobState int

// Job states.
const (
	JobPending           JobState = 3
	JobPendingHeld       JobState = 4
	JobProcessing        JobState = 5
	JobProcessingStopped JobState = 6
	JobCanceled          JobState = 7
	JobAborted           JobState = 8
	JobCompleted         JobState = 9
)

// Terminal reports whether the job has finished (canceled, aborted or completed).
func (s JobState) Terminal() bool { return s >= JobCanceled && s <= JobCompleted }

func (s JobState) String() string {
	switch s {
	case JobPending:
		return "pending"
	case JobPendingHeld:
		return "pending-held"
	case JobProcessing:
		return "processing"
	case JobProcessingStopped:
		return "processing-stopped"
	case JobCanceled:
		return "canceled"
	case JobAborted:
		return "aborted"
	case JobCompleted:
		return "completed"
	}
	return fmt.Sprintf("job-state(%d)", int(s))
}

// Reason is a printer-state-reasons keyword without its severity suffix (RFC 8011 §5.4.12,
// PWG 5100.9). It implements error, so errors.Is(err, ipp.ReasonMediaEmpty) finds it inside a
// *NotReadyError or *JobError.
type Reason string

// Well-known reasons.
const (
	ReasonNone              Reason = "none"
	ReasonMediaEmpty        Reason = "media-empty"
	ReasonMediaJam          Reason = "media-jam"
	ReasonMediaLow          Reason = "media-low"
	ReasonMediaNeeded       Reason = "media-needed"
	ReasonTonerLow          Reason = "toner-low"
	ReasonTonerEmpty        Reason = "toner-empty"
	ReasonMarkerSupplyLow   Reason = "marker-supply-low"
	ReasonMarkerSupplyEmpty Reason = "marker-supply-empty"
	ReasonDoorOpen          Reason = "door-open"
	ReasonCoverOpen         Reason = "cover-open"
	ReasonInputTrayMissing  Reason = "input-tray-missing"
	ReasonOutputAreaFull    Reason = "output-area-full"
	ReasonPaused            Reason = "paused"
	ReasonShutdown          Reason = "shutdown"
	ReasonOffline           Reason = "offline"
	ReasonConnectingToDev   Reason = "connecting-to-device"
	ReasonOther             Reason = "other"
)

func (r Reason) Error() string { return "ipp: printer " + string(r) }

// Blocking reports whether the reason stops printing (a job sent now would not print).
func (r Reason) Blocking() bool {
	switch r {
	case ReasonMediaEmpty, ReasonMediaJam, ReasonMediaNeeded, ReasonTonerEmpty, ReasonMarkerSupplyEmpty,
		ReasonDoorOpen, ReasonCoverOpen, ReasonInputTrayMissing, ReasonOutputAreaFull, ReasonPaused,
		ReasonShutdown, ReasonOffline:
		return true
	}
	return false
}

// Severity is a reason keyword's suffix (RFC 8011 §5.4.12): "-error", "-warning", "-report",
// or none (treated as error).
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityReport  Severity = "report"
)

// ParseReason splits a printer-state-reasons keyword into reason and severity.
func ParseReason(kw string) (Reason, Severity) {
	for _, s := range []Severity{SeverityError, SeverityWarning, SeverityReport} {
		if r, ok := strings.CutSuffix(kw, "-"+string(s)); ok {
			return Reason(r), s
		}
	}
	return Reason(kw), SeverityError
}

// StateReason is one entry of printer-state-reasons.
type StateReason struct {
	Reason   Reason
	Severity Severity
}

func (r StateReason) String() string {
	if r.Severity == SeverityError {
		return string(r.Reason)
	}
	return string(r.Reason) + "-" + string(r.Severity)
}
