package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca"
)

const caUsage = `Usage: fleet-hub ca COMMAND [flags]

The offline root ceremony: the device CA's root key is kept on a machine that is never on the
network, and the hub signs device and server certificates with an intermediate the root
certified. A stolen hub disk then holds no key that can make a root. Kiosks keep trusting the
root; the hub sends its intermediate with every certificate it signs. Run the same fleet-hub
binary on the offline machine.

Commands:
  init-root   --root DIR                      (offline) make a root key and certificate in DIR
  request     --data DIR [--out FILE]         (hub) make the intermediate's key and its request
  export-root --data DIR --root DIR           (hub) move the root key of a hub that made its own
                                              root out of its data folder into DIR (offline media)
  sign        --root DIR --csr FILE --out FILE [--validity 43800h]
                                              (offline) certify the request as an intermediate
  install     --data DIR --cert FILE [--root-cert FILE]
                                              (hub) install the intermediate; restart the hub
  status      --data DIR                      show the CA of a hub's data folder

An existing hub (root made by the hub itself): request, export-root, sign, install, restart.
Enrolled kiosks keep working: the root stays the same, only its key leaves the hub. Hubs made
before this ceremony existed have a root that may not certify an intermediate (sign says so):
they need a new root (init-root), installed with --root-cert, and their kiosks re-enrolled.
A new hub with an offline root from the start: init-root (offline), request, sign, install
with --root-cert FILE (the root certificate), then the first start.
`

func runCA(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, caUsage)
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("fleet-hub ca "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, caUsage) }
	data := fs.String("data", "", "the hub's data folder (its CA is in DATA/ca)")
	root := fs.String("root", "", "the offline root folder (root key and certificate)")
	out := fs.String("out", "", "file to write")
	csrFile := fs.String("csr", "", "the intermediate's certificate request")
	certFile := fs.String("cert", "", "the intermediate's certificate")
	rootCert := fs.String("root-cert", "", "the root certificate, for a hub that has none yet")
	validity := fs.Duration("validity", ca.IntermediateValidity, "lifetime of the intermediate (capped by the root's)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var missing []error
	need := func(v *string, name string) {
		if *v == "" {
			missing = append(missing, fmt.Errorf("--%s is required", name))
		}
	}
	caDir := filepath.Join(*data, "ca")
	switch cmd {
	case "init-root":
		need(root, "root")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		c, err := ca.NewRoot(*root)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "root made in %s (valid until %s), fingerprint %s\nkeep %s offline; copy %s to the hub for install --root-cert\n",
			*root, c.NotAfter.Format(time.DateOnly), fingerprint(c.Raw), filepath.Join(*root, ca.KeyFile), filepath.Join(*root, ca.CertFile))
	case "request":
		need(data, "data")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		csr, err := ca.Request(caDir)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = stdout.Write(csr)
			return err
		}
		if err := os.WriteFile(*out, csr, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "request written to %s (also in %s); sign it offline: fleet-hub ca sign --root DIR --csr FILE --out FILE\n",
			*out, filepath.Join(caDir, ca.IntermediateCSRFile))
	case "export-root":
		need(data, "data")
		need(root, "root")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		if err := ca.ExportRoot(caDir, *root); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "root key moved to %s and removed from the hub; keep it offline.\n"+
			"The running hub signs with the key it holds until it restarts: sign and install the intermediate first.\n", *root)
	case "sign":
		need(root, "root")
		need(csrFile, "csr")
		need(out, "out")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		csr, err := os.ReadFile(*csrFile)
		if err != nil {
			return err
		}
		cert, err := ca.SignIntermediate(*root, csr, *validity)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, cert, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "intermediate written to %s; install it on the hub: fleet-hub ca install --data DIR --cert FILE\n", *out)
	case "install":
		need(data, "data")
		need(certFile, "cert")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		cert, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		var rootPEM []byte
		if *rootCert != "" {
			if rootPEM, err = os.ReadFile(*rootCert); err != nil {
				return err
			}
		}
		if err := ca.Install(caDir, cert, rootPEM); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "intermediate installed; restart the hub to sign with it")
	case "status":
		need(data, "data")
		if len(missing) > 0 {
			return errors.Join(missing...)
		}
		s, err := ca.Describe(caDir)
		if err != nil {
			return err
		}
		if s.Root == nil {
			fmt.Fprintln(stdout, "no root yet (the hub makes one at its first start, unless a request is pending)")
		} else {
			key := "offline"
			if s.RootKeyOnline {
				key = "ON THE HUB (fleet-hub ca export-root moves it offline)"
			}
			fmt.Fprintf(stdout, "root:          %s, until %s, fingerprint %s, key %s\n", s.Root.Subject.CommonName,
				s.Root.NotAfter.Format(time.DateOnly), fingerprint(s.Root.Raw), key)
		}
		if s.Intermediate != nil {
			fmt.Fprintf(stdout, "intermediate:  %s, until %s (signs device and server certificates)\n",
				s.Intermediate.Subject.CommonName, s.Intermediate.NotAfter.Format(time.DateOnly))
		} else {
			fmt.Fprintln(stdout, "intermediate:  none (the root signs)")
		}
		if s.Pending {
			fmt.Fprintf(stdout, "pending:       %s waits to be signed offline\n", filepath.Join(caDir, ca.IntermediateCSRFile))
		}
	default:
		fmt.Fprint(stderr, caUsage)
		return fmt.Errorf("ca: unknown command %q", cmd)
	}
	return nil
}

// fingerprint is the SHA-256 of a certificate, for the operator to compare by eye.
func fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
