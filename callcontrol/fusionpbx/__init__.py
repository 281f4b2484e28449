"""What callcontrol writes into FusionPBX itself (``callcontrol fusionpbx ...``): its dialplan
entry, stored the way FusionPBX's Dialplan Manager stores one (:mod:`.dialplan`)."""
