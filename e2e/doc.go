// Package e2e holds the end-to-end tests of kioskfleet: a real fleet-hub and real kiosk-agent
// processes on loopback, with kill -9, network cuts through an in-test proxy, and counts of every
// record sent, acked and stored. It has no non-test code.
package e2e
