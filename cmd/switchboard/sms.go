package main

import (
	"errors"
	"fmt"

	"github.com/switchboard-health/switchboard/internal/deadletter"
)

// smsCmd is `switchboard sms`.
type smsCmd struct {
	Settle smsSettleCmd `cmd:"" help:"Settle a message held for an operator (message.held): adopt the provider's copy, or send it when there is none."`
}

type smsSettleCmd struct {
	ID     int64  `arg:"" help:"Message id (switchboard.messages.id; the dead letter's subject message/ID)."`
	Copy   string `help:"The provider message id (Twilio SID, Telnyx id) you found to be this message's copy: it is adopted and never sent again."`
	NoCopy bool   `name:"no-copy" help:"You found no copy of this message at its provider: it is sent."`
}

func (smsSettleCmd) Help() string {
	return `A message is held when its provider's copy could not be decided after an
answer was lost: two same-text messages to one number whose copies were made
in the same second, or more records at the provider than a look-up reads
(docs/sms.md). Compare the provider's console with the message, then give
exactly one of --copy or --no-copy. The dead letter is retried with the
decision and the action is written to switchboard.audit_log.`
}

func (c *smsSettleCmd) Validate() error {
	if (c.Copy == "") == !c.NoCopy {
		return errors.New("give exactly one of --copy PROVIDER_MESSAGE_ID or --no-copy")
	}
	if c.ID <= 0 {
		return fmt.Errorf("%d is not a message id (ids are positive)", c.ID)
	}
	return nil
}

func (c *smsSettleCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	job, err := deadletter.SettleHeldSMS(e.ctx, pool, c.ID, c.Copy, actor())
	if err != nil {
		return err
	}
	if c.NoCopy {
		fmt.Fprintf(e.stdout, "message %d: no copy at its provider; sending it as job %d\n", c.ID, job)
	} else {
		fmt.Fprintf(e.stdout, "message %d: adopted its copy %s; job %d completes it\n", c.ID, c.Copy, job)
	}
	return nil
}
