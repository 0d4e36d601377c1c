// The page's two ways to the back end, as any browser front end has them: the public GraphQL API at
// /graphql, and the demo's own back end: /demo/session signs a user in by minting a user token, and
// /demo/starters names users to start from.
// The browser never holds an API key.

/** An error the API answered with (or the network failed with): a code and a message. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// What each code means, in words, for someone who does not know the API.
const WORDS = {
  BAD_USER_INPUT: 'The request has a value the API does not accept',
  BAD_REQUEST: 'The request is malformed',
  NOT_FOUND: 'Not found',
  UNAUTHENTICATED: 'Not signed in, or the sign-in expired',
  FORBIDDEN: 'Not allowed for this user',
  RATE_LIMITED: 'Too many requests; wait a moment',
  MODEL_NOT_READY: 'No model is trained yet',
  UNAVAILABLE: 'A service behind the API is down; try again shortly',
  QUERY_TOO_EXPENSIVE: 'The query asks for too much',
  PAYLOAD_TOO_LARGE: 'The request is too large',
  NETWORK: 'The API could not be reached',
  NO_VIEWER: 'Nobody is watching yet',
};

/** Return what an error means in words: its meaning, the API's message. */
export function describe(error) {
  const words = WORDS[error.code] ?? 'The request failed';
  return `${words}: ${error.message}`;
}

let token = null; // the signed-in user's token; null for a visitor (anonymous requests)
let renew = null; // asks the demo's back end again for the same user once the token has expired

/** Post JSON (or, without a body, get) and return the parsed answer, or throw ApiError. */
async function call(url, body = null, headers = {}) {
  let response;
  try {
    response = await fetch(url, body === null ? {} : {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError('NETWORK', error.message);
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    throw new ApiError(`HTTP_${response.status}`, response.statusText || 'not a JSON answer');
  }
  const first = answer.errors?.[0];
  if (first) {
    const more = answer.errors.length > 1 ? ` (and ${answer.errors.length - 1} more)` : '';
    throw new ApiError(first.extensions?.code ?? `HTTP_${response.status}`, first.message + more);
  }
  if (!response.ok) throw new ApiError(`HTTP_${response.status}`, response.statusText);
  return answer;
}

/** Return the data of a GraphQL operation, sent with the user's token when one is signed in. */
export async function gql(query, variables = {}) {
  const send = () => call('/graphql', { query, variables }, token ? { authorization: `Bearer ${token}` } : {});
  try {
    return (await send()).data;
  } catch (error) {
    if (error.code !== 'UNAUTHENTICATED' || !renew) throw error;
    await renew(); // the token expired: the back end signs the same user in again, once
    return (await send()).data;
  }
}

/** Sign a user in through the demo's back end: {userId} or {newUser: {...}}; return the user's id. */
export async function signIn(request) {
  const session = await call('/demo/session', request);
  token = session.token;
  renew = () => signIn({ userId: session.userId });
  return session.userId;
}

/** Forget the user: the next requests are anonymous. */
export function signOut() {
  token = null;
  renew = null;
}

/** Return the users the demo's back end offers to start from: [{kind: 'active' or 'unrated', userId,
 * ratings}], an active user first. */
export async function starters() {
  return (await call('/demo/starters')).starters;
}
