package main

import "github.com/bitmesh/bitmesh/internal/cli"

var findCompanion = cli.FindCompanion
