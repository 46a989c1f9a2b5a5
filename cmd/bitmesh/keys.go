package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"
)

// dataFlags are the flags every command that touches the data directory has.
type dataFlags struct {
	dir            string
	passphraseFile string
}

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.dir, "data", node.DefaultConfig().DataDir, "data directory (identity key, API endpoint)")
	fs.StringVar(&d.passphraseFile, "passphrase-file", "", "file holding the key passphrase (or set BITMESH_PASSPHRASE); empty means an unencrypted key")
}

func (d *dataFlags) passphrase() ([]byte, error) {
	if d.passphraseFile != "" {
		b, err := os.ReadFile(d.passphraseFile)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	return []byte(os.Getenv("BITMESH_PASSPHRASE")), nil
}

type idOutput struct {
	DeviceID  string `json:"device_id"`
	PeerID    string `json:"peer_id"`
	PublicKey string `json:"public_key"`
	KeyFile   string `json:"key_file"`
}

func printID(w io.Writer, asJSON bool, key *identity.PrivateKey, path string) error {
	pid, err := key.DeviceID().PeerID()
	if err != nil {
		return err
	}
	out := idOutput{DeviceID: key.DeviceID().String(), PeerID: pid.String(), PublicKey: key.DeviceID().Hex(), KeyFile: path}
	if asJSON {
		return json.NewEncoder(w).Encode(out)
	}
	_, err = fmt.Fprintf(w, "device id:  %s\npeer id:    %s\npublic key: %s\nkey file:   %s\n", out.DeviceID, out.PeerID, out.PublicKey, out.KeyFile)
	return err
}

// keyFlags parses the flags keygen and id share and returns the key file
// path, the passphrase and whether to print JSON.
func keyFlags(name string, args []string, stderr io.Writer) (path string, pass []byte, asJSON bool, err error) {
	fs := newFlagSet(name, name+" [--data DIR] [--json]", stderr)
	var d dataFlags
	d.register(fs)
	j := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return "", nil, false, err
	}
	pass, err = d.passphrase()
	return identity.KeyPath(d.dir), pass, *j, err
}

func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	path, pass, asJSON, err := keyFlags("keygen", args, stderr)
	if err != nil {
		return err
	}
	key, err := identity.Generate()
	if err != nil {
		return err
	}
	if err := identity.Save(path, key, pass); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to replace an identity", path)
	} else if err != nil {
		return err
	}
	return printID(stdout, asJSON, key, path)
}

func runID(_ context.Context, args []string, stdout, stderr io.Writer) error {
	path, pass, asJSON, err := keyFlags("id", args, stderr)
	if err != nil {
		return err
	}
	key, err := identity.Load(path, pass)
	if errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		return fmt.Errorf("no identity in %s: run 'bitmesh keygen --data %s' or start a node", dir, dir)
	}
	if err != nil {
		return err
	}
	return printID(stdout, asJSON, key, path)
}
