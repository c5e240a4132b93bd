// A real OpenID Provider for the sign-in tests: npm `oidc-provider` (9.x) with what the test
// gives it in a JSON file (argv[2]):
//   {"issuer": "http://127.0.0.1:PORT", "port": PORT, "modules": "<dir holding node_modules>",
//    "jwks": {"keys": [<private JWKs>]}, "clients": [<client metadata>],
//    "users": {"<sub>": {"username", "password", "email", "groups": [...], "disabled": false}},
//    "ttl": {"AccessToken": 3600, ...}, "cookieKeys": ["..."]}
// Users are re-read from the file at every lookup, so a test disables a person or changes
// their groups by rewriting it. The development login of oidc-provider accepts any password;
// this script has its own login page that checks the password, and grants consent itself.
// Loopback only.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const configPath = process.argv[2];
const load = () => JSON.parse(fs.readFileSync(configPath, 'utf8'));
const config = load();
const { default: Provider } = await import(
  pathToFileURL(path.join(config.modules, 'oidc-provider', 'lib', 'index.js')).href);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function findUser(sub) {
  const user = load().users[sub];
  return user && !user.disabled ? user : undefined;
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: config.cookieKeys },
  // `groups` in the ID token as well as at userinfo (the console reads either).
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name', 'given_name', 'family_name', 'groups'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><head><title>Sign out</title></head><body>
          <h1>Sign out of the test provider?</h1>${form}
          <button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
          </body></html>`;
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = '<!DOCTYPE html><html><head><title>Signed out</title></head><body><h1>Signed out</h1></body></html>';
      },
    },
  },
  pkce: { required: () => true },
  ttl: config.ttl || {},
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  findAccount: async (ctx, sub) => {
    const user = findUser(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      claims: async () => ({
        sub,
        preferred_username: user.username,
        name: user.name || user.username,
        given_name: user.given_name || '',
        family_name: user.family_name || '',
        email: user.email || '',
        email_verified: true,
        groups: user.groups || [],
      }),
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>Error</title></head><body><h1>${escape(out.error)}</h1>
      <p>${escape(out.error_description || '')}</p></body></html>`;
  },
});

function loginPage(uid, error) {
  return `<!DOCTYPE html><html><head><title>Test provider sign-in</title></head><body>
    <h1>Test provider sign-in</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
    <form method="post" action="/interaction/${escape(uid)}/login">
      <label>User name <input name="username" autocomplete="username"></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"></label>
      <button type="submit">Continue</button>
    </form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const uid = details.uid;
  if (details.prompt.name === 'login') {
    if (ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = loginPage(uid);
      return undefined;
    }
    const form = await readForm(ctx.req);
    const users = load().users;
    const sub = Object.keys(users).find((key) => users[key].username === form.get('username'));
    if (!sub || users[sub].password !== form.get('password') || users[sub].disabled) {
      ctx.type = 'html';
      ctx.status = 200;
      ctx.body = loginPage(uid, 'Wrong user name or password.');
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: sub } },
      { mergeWithLastSubmission: false });
  }
  // Consent: grant what the client asked for.
  const { params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } },
    { mergeWithLastSubmission: true });
});

provider.listen(config.port, '127.0.0.1');
