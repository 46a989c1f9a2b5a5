# Reads a .ots file with the reference implementation (Debian package
# python3-opentimestamps) and prints what it finds, for ots_test.go:
#   roundtrip <true|false>      re-serialization is byte-identical
#   digest <hex>
#   bitcoin <height> <msg hex>  one line per Bitcoin attestation, sorted
#   pending <uri> <msg hex>     one line per pending attestation, sorted
import sys
from opentimestamps.core.timestamp import DetachedTimestampFile
from opentimestamps.core.serialize import BytesDeserializationContext, BytesSerializationContext
from opentimestamps.core.notary import PendingAttestation, BitcoinBlockHeaderAttestation

data = open(sys.argv[1], 'rb').read()
f = DetachedTimestampFile.deserialize(BytesDeserializationContext(data))
ctx = BytesSerializationContext()
f.serialize(ctx)
print('roundtrip', 'true' if ctx.getbytes() == data else 'false')
print('digest', f.file_digest.hex())
btc, pending = [], []
for msg, att in f.timestamp.all_attestations():
    if isinstance(att, PendingAttestation):
        pending.append('pending %s %s' % (att.uri, msg.hex()))
    elif isinstance(att, BitcoinBlockHeaderAttestation):
        btc.append('bitcoin %d %s' % (att.height, msg.hex()))
print('\n'.join(sorted(btc) + sorted(pending)))
