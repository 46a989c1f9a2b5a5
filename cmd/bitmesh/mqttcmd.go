package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// runMQTT is `bitmesh mqtt passwd`: it reads a password from standard
// input (one line) and prints its bcrypt hash, for --mqtt-user.
func runMQTT(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "passwd" {
		fmt.Fprintln(stderr, "Usage: bitmesh mqtt passwd < password\n\nprints the bcrypt hash of the password read from standard input, for --mqtt-user NAME:HASH:PUB:SUB")
		return errUsage
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 73)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" || len(pass) > 72 {
		return fmt.Errorf("mqtt passwd: want a password of 1..72 bytes on standard input (bcrypt's bound)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(h))
	return err
}
