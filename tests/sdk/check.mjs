// Drives the official @immich/sdk against BASE_URL (Immich or the Twinlens gateway) and
// prints one JSON document of what it saw; tests/integration/test_gateway_sdk.py compares
// the document from the gateway with the one from Immich directly.
import { createHash } from 'node:crypto';
import {
  setBaseUrl, setHeader, login, getMyUser, getAssetInfo, searchAssets, viewAsset,
  downloadAsset, deleteAssets,
} from '@immich/sdk';

const [baseUrl, email, password, assetId, trashId] = process.argv.slice(2);
const sha1 = async (blob) => createHash('sha1').update(Buffer.from(await blob.arrayBuffer())).digest('hex');
const withoutTwinlens = ({ twinlens, ...rest }) => rest;

const out = {};
setBaseUrl(`${baseUrl}/api`);
try {
  await getMyUser();
} catch (err) {
  out.anonymous = { status: err.status, data: err.data };
}
const session = await login({ loginCredentialDto: { email, password } });
out.login = { userEmail: session.userEmail, hasToken: session.accessToken.length > 0 };
setHeader('Authorization', `Bearer ${session.accessToken}`);
out.me = await getMyUser();
const info = await getAssetInfo({ id: assetId });
out.assetInfo = withoutTwinlens(info);
out.assetInfoHasTwinlens = 'twinlens' in info;
const found = await searchAssets({ metadataSearchDto: { originalFileName: info.originalFileName, withExif: true } });
out.search = found.assets.items.map(withoutTwinlens);
out.thumbnail = { sha1: await sha1(await viewAsset({ id: assetId, size: 'thumbnail' })) };
out.original = { sha1: await sha1(await downloadAsset({ id: assetId })) };
await deleteAssets({ assetBulkDeleteDto: { ids: [trashId], force: false } });
out.afterDelete = { isTrashed: (await getAssetInfo({ id: trashId })).isTrashed };
try {
  await getAssetInfo({ id: '00000000-0000-4000-8000-000000000000' });
} catch (err) {
  out.missing = { status: err.status, data: err.data };
}
process.stdout.write(JSON.stringify(out));
