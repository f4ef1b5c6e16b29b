"""Appends a block to a Switchboard session ticket with biscuit-python (the Biscuit library of
another language's ecosystem), as a holder outside Switchboard would: offline, with only the
tenant's public key.

    python biscuit_attenuate.py <ticket> <public key hex> <datalog block>

Prints the new ticket (same `sbt_<tenant>_` prefix). Exit status 2 on bad input.
"""
import sys

import biscuit_auth as b


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    ticket, public_hex, block = sys.argv[1:]
    if not ticket.startswith("sbt_") or ticket.count("_") < 2:
        print("not a session ticket", file=sys.stderr)
        return 2
    prefix, encoded = ticket[: 4 + 32 + 1], ticket[4 + 32 + 1 :]
    public = b.PublicKey("ed25519/" + public_hex)
    token = b.Biscuit.from_base64(encoded, public)
    narrowed = token.append(b.BlockBuilder(block))
    print(prefix + narrowed.to_base64())
    return 0


if __name__ == "__main__":
    sys.exit(main())
