package natstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Operator is a NATS operator with a system account and one account for
// the fleet, with JetStream, whose users it signs.
type Operator struct {
	dir                   string
	op, sys, acc          nkeys.KeyPair
	opJWT, sysJWT, accJWT string
	sysPub, accPub        string
}

// NewOperator makes the keys and JWTs of an operator and its accounts;
// credentials files go into dir.
func NewOperator(dir string) (*Operator, error) {
	o := &Operator{dir: dir}
	var err error
	if o.op, err = nkeys.CreateOperator(); err != nil {
		return nil, err
	}
	opPub, _ := o.op.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "traceflow-test"
	if o.opJWT, err = oc.Encode(o.op); err != nil {
		return nil, err
	}
	if o.sys, o.sysPub, o.sysJWT, err = o.account("SYS", false); err != nil {
		return nil, err
	}
	if o.acc, o.accPub, o.accJWT, err = o.account("TRACEFLOW", true); err != nil {
		return nil, err
	}
	return o, nil
}

// account makes an account signed by the operator.
func (o *Operator) account(name string, jetstream bool) (nkeys.KeyPair, string, string, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, "", "", err
	}
	pub, _ := kp.PublicKey()
	ac := jwt.NewAccountClaims(pub)
	ac.Name = name
	if jetstream {
		ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	}
	token, err := ac.Encode(o.op)
	return kp, pub, token, err
}

// ServerConfig is the part of a nats-server configuration that trusts
// the operator and knows its accounts (a memory resolver).
func (o *Operator) ServerConfig() string {
	return fmt.Sprintf("operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %s\n  %s: %s\n}\n",
		o.opJWT, o.sysPub, o.sysPub, o.sysJWT, o.accPub, o.accJWT)
}

// Permissions are the subjects a user may, and may not, publish to.
type Permissions struct {
	Publish, DenyPublish []string
}

// Creds writes the credentials file of a new user of the fleet's account
// and returns its path and the user's seed (a secret, for tests that check
// it is never shown).
func (o *Operator) Creds(name string, p Permissions) (path, seed string, err error) {
	return o.creds(name, p, o.acc, o.accPub)
}

// StrangerCreds writes the credentials of a user signed by an account the
// servers do not know: well-formed, and refused.
func (o *Operator) StrangerCreds(name string) (path, seed string, err error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return "", "", err
	}
	pub, _ := kp.PublicKey()
	return o.creds(name, Permissions{}, kp, pub)
}

func (o *Operator) creds(name string, p Permissions, acc nkeys.KeyPair, accPub string) (path, seed string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	pub, _ := kp.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name, uc.IssuerAccount = name, accPub
	uc.Pub.Allow.Add(p.Publish...)
	uc.Pub.Deny.Add(p.DenyPublish...)
	token, err := uc.Encode(acc)
	if err != nil {
		return "", "", err
	}
	s, err := kp.Seed()
	if err != nil {
		return "", "", err
	}
	b, err := jwt.FormatUserConfig(token, s)
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(o.dir, strings.ToLower(name)+".creds")
	return path, string(s), os.WriteFile(path, b, 0o600)
}
