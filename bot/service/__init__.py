"""Use cases a person starts: vote on a request, resolve an intent or an order by hand, halt, resume, resume a
hedge. Each takes the settings, the store and the person's proof, does its work through the store (every
refused attempt audited), and returns a result; the command line (and, later, the web surface) parses, calls,
and shows the result. Nothing here prints, prompts or exits.

    identity.py     an approver proves who they are with their own secret; a refusal is audited and notified
    approvals.py    approve / reject a request (the vote under row locks), and the oldest pending one
    resolutions.py  close an intent or an order of unknown outcome after checking the venue
    controls.py     the kill switch: halt, resume, and a stopped hedge program's resume
"""
