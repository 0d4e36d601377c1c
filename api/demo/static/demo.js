// The demo page: who is watching (it opens on a user the back end offers), their recommendations and
// why, rating (the list refreshes and shows what changed), similar movies (opened from a user's list,
// recorded as a click on it), catalogue search.
// Everything goes through the public GraphQL API (api.js); nothing here is inline, so the page runs under
// the app's Content-Security-Policy.
import { ApiError, describe, gql, signIn, signOut, starters } from './api.js';
import { flagPanel, showPanel, wireTabs } from './tabs.js';

const MOVIE = 'id displayTitle year genres averageRating ratingsCount';
const START = '{ genres occupations { id name } dataset { description synthetic } modelInfo { version trainedAt } }';
const RECOMMENDED = `score source modelVersion impressionId movie { ${MOVIE} } because { id displayTitle year }`;
const USER_RECS = `query UserRecommendations($userId: Int!, $genres: [String!], $yearFrom: Int, $yearTo: Int) {
  recommendations(userId: $userId, limit: 10, genres: $genres, yearFrom: $yearFrom, yearTo: $yearTo) { ${RECOMMENDED} }
  user(id: $userId) { id gender age occupation zipCode ratings(first: 5) { nodes { rating movie { id displayTitle year } } } }
}`;
const VISITOR_RECS = `query VisitorRecommendations($gender: String!, $age: Int!, $occupation: Int!,
    $rated: [RatedMovieInput!]!, $genres: [String!], $yearFrom: Int, $yearTo: Int) {
  recommendationsForProfile(gender: $gender, age: $age, occupation: $occupation, ratedMovies: $rated,
    limit: 10, genres: $genres, yearFrom: $yearFrom, yearTo: $yearTo) { ${RECOMMENDED} }
}`;
// The stars go in as a literal, which reads as an Int or a Float argument alike.
const rateMutation = (stars) => `mutation Rate($userId: Int!, $movieId: Int!) {
  rateMovie(userId: $userId, movieId: $movieId, rating: ${Number(stars)}) { rating }
}`;
const FEEDBACK = `mutation Feedback($userId: Int!, $impressionId: ID!, $movieId: Int!, $kind: FeedbackKind!) {
  recordFeedback(userId: $userId, impressionId: $impressionId, movieId: $movieId, kind: $kind) { recordedAt }
}`;
const SEARCH = `query Search($search: String, $after: String) {
  movies(search: $search, first: 10, after: $after) {
    nodes { ${MOVIE} } pageInfo { hasNextPage endCursor }
  }
}`;
const SIMILAR = `query Similar($movieId: Int!) { similarMovies(movieId: $movieId, limit: 10) { score movie { ${MOVIE} } } }`;

const state = {
  who: null, // {kind: 'user', id} or {kind: 'visitor', gender, age, occupation}
  rated: new Map(), // movie id -> {stars, title}, rated on this page, oldest first: a visitor's whole profile
  shown: new Map(), // movie id -> title, of the recommendations on screen
  search: { text: '', after: null },
  measured: 0, // rate clicks timed so far
};

const $ = (selector) => document.querySelector(selector);

/** Return a new element: props are attributes, but `class`, `text` and `on…` listeners. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** Return the label of an option of one of the profile form's selects, e.g. age 25 -> "25–34". */
function optionText(name, value) {
  return $(`#profile-form select[name="${name}"] option[value="${value}"]`)?.textContent ?? String(value);
}

/** Return the display title without the year MovieLens appends, e.g. "Usual Suspects, The (1995)" ->
 * "The Usual Suspects". */
function shortTitle(movie) {
  const suffix = ` (${movie.year})`;
  const title = movie.displayTitle;
  return movie.year && title.endsWith(suffix) ? title.slice(0, -suffix.length) : title;
}

const FEW = 10; // fewer ratings than this make an average worth little

/** Return how people rated a movie in words: "4.3 ★ from 1,204 ratings", "from only 2", or none yet. */
function rated(movie) {
  const n = movie.ratingsCount;
  if (!n || movie.averageRating === null) return 'no ratings yet';
  const average = `${movie.averageRating.toFixed(1)} ★`;
  return n < FEW ? `${average} from only ${plural(n, 'rating')}` : `${average} from ${n.toLocaleString('en')} ratings`;
}

/** Return who the page shows, in words: "user 12", "a visitor", "nobody yet". */
function showing() {
  if (!state.who) return 'nobody yet';
  return state.who.kind === 'user' ? `user ${state.who.id}` : 'a visitor';
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Show an error, its code and its meaning in words; `after` says what the page shows meanwhile. */
function showError(error, after = '') {
  const problem = error instanceof ApiError ? error : new ApiError('CLIENT_ERROR', String(error));
  if (!(error instanceof ApiError)) console.error(error);
  const words = describe(problem);
  const then = after ? `${/[.!?]$/.test(words) ? '' : '.'} ${after}` : '';
  $('#error').replaceChildren(
    el('p', {}, el('strong', { class: 'code', text: problem.code }), ' ', words, then),
    el('button', { type: 'button', class: 'secondary small', text: 'Dismiss', onclick: clearError }),
  );
  $('#error').hidden = false;
}

function clearError() {
  $('#error').hidden = true;
  $('#error').replaceChildren();
}

/** Return the ten half-star buttons rating a movie (each star's left half gives n - 0.5, its right
 * half n), the stars given on this page lit. */
function stars(movie, title) {
  const group = el('div', { class: 'stars', role: 'group', 'aria-label': `Rate ${title}`, 'data-movie-id': movie.id });
  for (let half = 1; half <= 10; half += 1) {
    const n = half / 2;
    const name = `Rate ${plural(n, 'star')}`;
    group.append(el('button', { type: 'button', class: `star ${half % 2 ? 'left' : 'right'}`, 'aria-label': name,
      title: name, onclick: () => rate(movie, title, n) }, el('span', { class: 'glyph', 'aria-hidden': 'true', text: '★' })));
  }
  paint(group, state.rated.get(movie.id)?.stars ?? 0);
  return group;
}

function paint(group, given) {
  group.querySelectorAll('.star').forEach((button, i) => {
    button.classList.toggle('lit', (i + 1) / 2 <= given);
    button.setAttribute('aria-pressed', String((i + 1) / 2 === given));
  });
}

/** Return why a movie was recommended, as a paragraph: the liked movies it comes from, or its source. */
function reason(source, because) {
  if (source === 'popularity') {
    return el('p', { class: 'because' }, 'Popular: among the most rated movies. Rate a few to make the list yours.');
  }
  if (!because.length) return el('p', { class: 'because' }, 'Picked by the model for this profile.');
  const liked = because.flatMap((m, i) => [i ? ' and ' : '', el('cite', { text: shortTitle(m) })]);
  return el('p', { class: 'because' }, 'Because you liked ', ...liked);
}

/** Return a movie's list item: title, year, genres, how people rated it, why (a recommendation), its
 * model score (developer view), stars and a link to similar movies; with feedback ({userId,
 * impressionId}, a user's list), opening the similar movies records a click. */
function movieItem(movie, {
  rank = null, score = null, source = null, why = null, isNew = false, feedback = null,
} = {}) {
  const title = shortTitle(movie);
  const facts = [movie.genres.join(' · ') || 'no genre', rated(movie)];
  return el('li', { class: isNew ? 'movie new' : 'movie', 'data-movie-id': movie.id },
    el('div', { class: 'movie-head' },
      rank === null ? null : el('span', { class: 'rank', text: `${rank}.` }),
      el('span', { class: 'title', text: title }),
      movie.year ? el('span', { class: 'year', text: String(movie.year) }) : null,
      isNew ? el('span', { class: 'badge', text: 'new' }) : null),
    el('p', { class: 'facts' }, facts.join(' — '),
      score === null ? null : el('span', {
        class: 'developer', text: ` — score ${score.toFixed(3)}${source ? `, ${source}` : ''}`,
      })),
    why,
    el('div', { class: 'actions' },
      stars(movie, title),
      el('button', { type: 'button', class: 'secondary small', text: 'Similar', 'aria-label': `Similar to ${title}`,
        onclick: () => {
          if (feedback) recordFeedback({ ...feedback, movieId: movie.id, kind: 'CLICK' });
          showSimilar(movie, title);
        } })));
}

/** Tell the API what the user did with a movie of their list, without waiting: the feedback feeds the
 * experiments' results, not this page, so a failure is logged and the page goes on. */
function recordFeedback(variables) {
  gql(FEEDBACK, variables).catch((error) => console.warn(`recordFeedback: ${describe(error)}`));
}

/** Say in the footer which model version served the list and, for a user's list, its impression: in an
 * experiment the version may not be the active one the header names. */
function showServed(recs) {
  const served = $('#served');
  served.replaceChildren();
  if (!recs.length) return;
  served.append(`This list: model version ${recs[0].modelVersion}`);
  if (recs[0].impressionId) served.append(', impression ', el('code', { text: recs[0].impressionId }));
  served.append('.');
}

/** Ask for the recommendations again and show them; with compare, mark what entered and say what left. */
async function refreshRecommendations({ compare = false, note = '' } = {}) {
  const { who } = state;
  const filters = currentFilters();
  let recs;
  let latest;
  if (who.kind === 'user') {
    const data = await gql(USER_RECS, { userId: who.id, ...filters });
    recs = data.recommendations;
    latest = data.user.ratings.nodes.map((r) => [shortTitle(r.movie), r.rating]);
    const u = data.user;
    $('#whoami').textContent = `Showing user ${u.id}: ${u.gender}, ${optionText('age', u.age)}, ${u.occupation}, `
      + `zip ${u.zipCode}. The page calls the API with this user's token.`;
  } else {
    const rated = [...state.rated].map(([movieId, r]) => ({ movieId, rating: r.stars }));
    const data = await gql(VISITOR_RECS, { gender: who.gender, age: who.age, occupation: who.occupation, rated, ...filters });
    recs = data.recommendationsForProfile;
    latest = [...state.rated.values()].reverse().slice(0, 5).map((r) => [r.title, r.stars]);
  }
  const before = state.shown;
  state.shown = new Map(recs.map((r) => [r.movie.id, shortTitle(r.movie)]));
  const fresh = compare ? recs.filter((r) => !before.has(r.movie.id)) : [];
  const gone = compare ? [...before].filter(([id]) => !state.shown.has(id)).map(([, title]) => title) : [];
  // Only a user's list has an impression (a visitor's is not recorded); every item of it shares the one.
  const impressionId = recs[0]?.impressionId;
  const feedback = who.kind === 'user' && impressionId ? { userId: who.id, impressionId } : null;
  $('#recs-list').replaceChildren(...recs.map((r, i) => movieItem(r.movie, {
    rank: i + 1, score: r.score, source: r.source, why: reason(r.source, r.because), isNew: fresh.includes(r), feedback,
  })));
  showServed(recs);
  $('#recs-title').textContent = `Recommendations for ${showing()}`;
  const name = who.kind === 'user' ? `user ${who.id}` : 'you, a visitor';
  const years = filters.yearFrom ?? filters.yearTo ? `${filters.yearFrom ?? '…'}–${filters.yearTo ?? '…'}` : null;
  const within = [filters.genres?.[0], years].filter(Boolean).join(', ');
  const parts = [note, `${plural(recs.length, 'recommendation')} for ${name}${within ? ` (${within})` : ''}.`];
  if (compare) {
    parts.push(fresh.length ? `New: ${fresh.map((r) => shortTitle(r.movie)).join(', ')}.` : 'Nothing new.');
    if (gone.length) parts.push(`Left the list: ${gone.join(', ')}.`);
  }
  $('#recs-status').textContent = parts.filter(Boolean).join(' ');
  if (compare) flagPanel('recs');
  $('#my-ratings').textContent = latest.length
    ? `Latest ratings: ${latest.map(([title, n]) => `${title} ${n} ★`).join(', ')}`
    : 'No ratings yet: the list starts from the most popular movies. Rate a few to make it yours.';
}

/** Rate a movie; the page's click-to-refreshed-list time lands in body[data-rate-ms]. */
async function rate(movie, title, stars) {
  const started = performance.now();
  clearError();
  if (!state.who) {
    showError(new ApiError('NO_VIEWER', 'choose a user, create one or browse as a visitor before rating'));
    return;
  }
  try {
    if (state.who.kind === 'user') await gql(rateMutation(stars), { userId: state.who.id, movieId: movie.id });
    state.rated.delete(movie.id); // a visitor's newest rating goes last
    state.rated.set(movie.id, { stars, title });
    document.querySelectorAll(`.stars[data-movie-id="${movie.id}"]`).forEach((group) => paint(group, stars));
    await refreshRecommendations({ compare: true, note: `You rated ${title} ${plural(stars, 'star')}.` });
    state.measured += 1;
    document.body.dataset.rateMs = (performance.now() - started).toFixed(1);
    document.body.dataset.rateCount = String(state.measured);
  } catch (error) {
    showError(error);
  }
}

/** Make the id box and the starters say who the page shows. */
function markWho() {
  $('#user-id').value = state.who?.kind === 'user' ? String(state.who.id) : '';
  document.querySelectorAll('#starters button').forEach((button) => {
    const user = button.dataset.userId;
    const current = user ? state.who?.kind === 'user' && state.who.id === Number(user) : state.who?.kind === 'visitor';
    button.setAttribute('aria-pressed', String(current));
  });
}

/** Switch to a user (signed in through the demo's back end with `request`) or to a visitor; when that
 * fails, the page says who it still shows. */
async function choose(request, visitor = null) {
  clearError();
  const before = state.who;
  try {
    if (request) {
      state.who = { kind: 'user', id: await signIn(request) };
      $('#whoami').textContent = `Showing user ${state.who.id}.`;
    } else {
      signOut(); // a visitor's requests are anonymous
      state.who = visitor;
      $('#whoami').textContent = `Showing a visitor: ${visitor.gender}, ${optionText('age', visitor.age)}, `
        + `${optionText('occupation', visitor.occupation)}. Ratings stay in this page; the API is called anonymously.`;
    }
    markWho();
    state.rated = new Map();
    state.shown = new Map();
    document.querySelectorAll('.stars').forEach((group) => paint(group, 0));
    await refreshRecommendations();
  } catch (error) {
    markWho();
    if (state.who === before) {
      showError(error, `The page still shows ${showing()}.`);
      return;
    }
    // Switched, but the list could not be read: no list of the one before stays under the new name.
    $('#recs-list').replaceChildren();
    $('#served').replaceChildren();
    $('#recs-title').textContent = `Recommendations for ${showing()}`;
    $('#recs-status').textContent = `No recommendations for ${showing()}: the request failed.`;
    showError(error);
  }
}

const VISITOR = { kind: 'visitor', gender: 'F', age: 25, occupation: 12 };

/** Return the users the back end offers to start from; none when it cannot say (the forms still work). */
async function offeredStarters() {
  try {
    return await starters();
  } catch (error) {
    console.warn(`starters: ${describe(error)}`);
    return [];
  }
}

/** Offer the users the back end names and a visitor as one-click starts; return the first offered. */
function offerStarters(offered) {
  const words = {
    active: (s) => `An active user: user ${s.userId} (${plural(s.ratings, 'rating')})`,
    unrated: (s) => `A new user: user ${s.userId} (no ratings yet)`,
  };
  const buttons = offered.filter((s) => words[s.kind]).map((s) => el('button', {
    type: 'button', class: 'secondary small', 'data-user-id': s.userId, text: words[s.kind](s),
    onclick: () => choose({ userId: s.userId }),
  }));
  const visitor = `A visitor: ${VISITOR.gender}, ${optionText('age', VISITOR.age)}, ${optionText('occupation', VISITOR.occupation)}`;
  buttons.push(el('button', { type: 'button', class: 'secondary small', text: visitor, onclick: () => choose(null, VISITOR) }));
  $('#starters').append(...buttons);
  markWho();
  return offered[0] ? () => choose({ userId: offered[0].userId }) : () => choose(null, VISITOR);
}

async function search(more) {
  clearError();
  const text = more ? state.search.text : $('#search-text').value.trim();
  try {
    const { movies } = await gql(SEARCH, { search: text || null, after: more ? state.search.after : null });
    state.search = { text, after: movies.pageInfo.endCursor };
    const items = movies.nodes.map((m) => movieItem(m));
    if (more) $('#search-list').append(...items);
    else $('#search-list').replaceChildren(...items);
    $('#search-more').hidden = !movies.pageInfo.hasNextPage;
    const count = $('#search-list').children.length;
    const matching = text ? ` matching “${text}”` : '';
    $('#search-status').textContent = count
      ? `${plural(count, 'movie')}${matching}${movies.pageInfo.hasNextPage ? ', more to come' : ''}.`
      : `No movie${matching}.`;
  } catch (error) {
    showError(error);
  }
}

async function showSimilar(movie, title) {
  clearError();
  try {
    const { similarMovies } = await gql(SIMILAR, { movieId: movie.id });
    $('#similar-title').textContent = `Similar to ${title}`;
    $('#similar-list').replaceChildren(...similarMovies.map((r) => movieItem(r.movie, { score: r.score })));
    $('#similar-status').textContent = `${plural(similarMovies.length, 'movie')} closest to ${title} in the model.`;
    showPanel('similar', { reveal: true });
  } catch (error) {
    showError(error);
  }
}

/** Return the filters the form shows: the list always answers to what the page says. */
function currentFilters() {
  const year = (selector) => ($(selector).value.trim() === '' ? null : Number($(selector).value));
  const genre = $('#genre').value;
  return { genres: genre ? [genre] : null, yearFrom: year('#year-from'), yearTo: year('#year-to') };
}

function wire() {
  $('#pick-form').addEventListener('submit', (event) => {
    event.preventDefault();
    choose({ userId: Number($('#user-id').value) });
  });
  $('#profile-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const profile = { gender: form.get('gender'), age: Number(form.get('age')), occupation: Number(form.get('occupation')) };
    if (event.submitter?.value === 'visitor') choose(null, { kind: 'visitor', ...profile });
    else choose({ newUser: { ...profile, zipCode: form.get('zipCode') } });
  });
  $('#filters').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    if (!state.who) {
      $('#recs-status').textContent = 'Choose who is watching first.';
      return;
    }
    try {
      await refreshRecommendations();
    } catch (error) {
      showError(error);
    }
  });
  $('#search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    search(false);
  });
  $('#search-more').addEventListener('click', () => search(true));
  $('#developer').addEventListener('change', (event) => {
    document.body.classList.toggle('developer-view', event.target.checked);
  });
  wireTabs();
}

/** Say in the footer what data the catalogue holds: the synthetic sample's titles look real. */
function describeDataset(dataset) {
  if (!dataset) $('#dataset').textContent = 'No data has been imported yet.';
  else if (dataset.synthetic) {
    $('#dataset').textContent = 'The data is the synthetic sample: its titles look real, but its movies, '
      + 'users and ratings are made up.';
  } else $('#dataset').textContent = `Data: ${dataset.description}.`;
}

/** Wire the page, read the genres, occupations, data and model, and open on the first user offered. */
async function start() {
  wire();
  const offering = offeredStarters(); // beside the read of the model; it never throws
  try {
    const { genres, occupations, dataset, modelInfo } = await gql(START);
    $('#genre').append(...genres.map((g) => el('option', { value: g, text: g })));
    const occupation = $('#profile-form select[name="occupation"]');
    occupation.append(...occupations.map((o) => el('option', { value: o.id, text: o.name })));
    occupation.value = String(VISITOR.occupation);
    describeDataset(dataset);
    $('#model').textContent = modelInfo
      ? `Model version ${modelInfo.version}${modelInfo.trainedAt ? `, trained ${new Date(modelInfo.trainedAt).toLocaleDateString()}` : ''}`
      : 'No model is trained yet';
    const first = offerStarters(await offering);
    if (modelInfo) await first(); // without a model there is nothing to show yet
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = 'true';
}

start();
