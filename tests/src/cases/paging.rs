//! Sorting, index paging and cursor paging, checked against the core's reference
//! [`paginate`] and against the rules directly.

use super::filters::{corpus, seed_people};
use crate::fixtures::*;
use scimd_core::paging::paginate;
use scimd_core::query::{CursorPosition, Page, QueryPage, Sort};
use scimd_core::resource::Resource;
use scimd_core::schema::{ENTERPRISE_USER, ResourceKind};
use scimd_core::{Backend, Load};

/// The reference result of a query over `all` (which must already be filtered).
fn reference(all: &[Resource], sort: Option<&Sort>, page: &Page) -> QueryPage {
    let reg = registry();
    paginate(
        reg.resource_type(ResourceKind::User),
        all.to_vec(),
        sort,
        page,
    )
}

async fn page_of(backend: &dyn Backend, src: &str, sort: Option<&Sort>, page: Page) -> QueryPage {
    run_query(
        backend,
        src,
        ResourceKind::User,
        None,
        sort.cloned(),
        page,
        Load::ALL,
    )
    .await
}

fn all_at_once(backend: &dyn Backend) -> Page {
    Page::Index {
        start_index: 1,
        count: max_page(backend),
    }
}

/// Sorting follows the attribute's type and caseExact, puts resources without a value last in both directions, and breaks ties by id — exactly as the reference does.
pub async fn sort_orders_like_the_reference(backend: &dyn Backend) {
    if !has("sort", "sort", backend.capabilities().sort) {
        return;
    }
    let src = source("sort");
    let p = seed_people(backend, &src).await;
    let all = corpus(backend, &src, ResourceKind::User).await;
    let badge = format!("{CONFORMANCE_EXT}:badge");
    let hired = format!("{CONFORMANCE_EXT}:hired");
    let department = format!("{ENTERPRISE_USER}:department");
    let paths = [
        "title",
        "userName",
        "name.givenName",
        "meta.created",
        "meta.lastModified",
        "id",
        "emails.value",
        "active",
        badge.as_str(),
        hired.as_str(),
        department.as_str(),
    ];
    for path in paths {
        for descending in [false, true] {
            let s = sort(ResourceKind::User, path, descending);
            let got = page_of(backend, &src, Some(&s), all_at_once(backend)).await;
            let want = reference(&all, Some(&s), &all_at_once(backend));
            assert_eq!(
                ids(&got.resources),
                ids(&want.resources),
                "sortBy={path} descending={descending}"
            );
            assert_eq!(got.total_results, all.len() as u64);
        }
    }

    let key = |r: &Resource| {
        p.users
            .iter()
            .find(|(_, u)| u.id == r.id)
            .map(|(k, _)| *k)
            .unwrap_or("?")
    };
    let by_id = |mut v: Vec<&'static str>| {
        v.sort_by_key(|k| p.user(k).id.clone());
        v
    };
    let order = |page: &QueryPage| page.resources.iter().map(key).collect::<Vec<_>>();

    // Numbers sort numerically; users without a badge come last, by id, in both directions.
    let asc = page_of(
        backend,
        &src,
        Some(&sort(ResourceKind::User, &badge, false)),
        all_at_once(backend),
    )
    .await;
    let mut want = vec!["dave", "bob", "alice", "carol"];
    want.extend(by_id(vec!["erin", "frank"]));
    assert_eq!(order(&asc), want, "sortBy=badge ascending");
    let desc = page_of(
        backend,
        &src,
        Some(&sort(ResourceKind::User, &badge, true)),
        all_at_once(backend),
    )
    .await;
    let mut want = vec!["carol", "alice", "bob", "dave"];
    want.extend(by_id(vec!["erin", "frank"]));
    assert_eq!(order(&desc), want, "sortBy=badge descending");

    // `title` is not caseExact: "Engineer" and "engineer" tie and are ordered by id.
    let asc = page_of(
        backend,
        &src,
        Some(&sort(ResourceKind::User, "title", false)),
        all_at_once(backend),
    )
    .await;
    let mut want = by_id(vec!["alice", "erin"]);
    want.push("carol");
    want.extend(by_id(vec!["bob", "dave", "frank"]));
    assert_eq!(order(&asc), want, "sortBy=title ascending");
    let desc = page_of(
        backend,
        &src,
        Some(&sort(ResourceKind::User, "title", true)),
        all_at_once(backend),
    )
    .await;
    assert_eq!(
        order(&desc)[0],
        "carol",
        "sortBy=title descending starts with Manager"
    );
    assert_eq!(
        order(&desc)[3..].to_vec(),
        by_id(vec!["bob", "dave", "frank"]),
        "users without a title come last when descending too"
    );
}

/// A sorted, filtered query sorts only the matches and counts only them.
pub async fn sort_applies_to_filtered_results(backend: &dyn Backend) {
    if !has("sort_filtered", "sort", backend.capabilities().sort) {
        return;
    }
    let src = source("sort_filtered");
    seed_people(backend, &src).await;
    let f = filter(ResourceKind::User, "active eq true");
    let s = sort(ResourceKind::User, "userName", true);
    let got = run_query(
        backend,
        &src,
        ResourceKind::User,
        Some(f.clone()),
        Some(s.clone()),
        Page::Index {
            start_index: 2,
            count: 2,
        },
        Load::ALL,
    )
    .await;
    let reg = registry();
    let rt = reg.resource_type(ResourceKind::User);
    let matched: Vec<Resource> = corpus(backend, &src, ResourceKind::User)
        .await
        .into_iter()
        .filter(|r| scimd_core::filter::matches(&f, rt, r))
        .collect();
    let want = reference(
        &matched,
        Some(&s),
        &Page::Index {
            start_index: 2,
            count: 2,
        },
    );
    assert_eq!(got.total_results, 4);
    assert_eq!(ids(&got.resources), ids(&want.resources));
}

async fn seed_users(backend: &dyn Backend, src: &str, n: usize) -> Vec<Resource> {
    let mut out = Vec::new();
    for i in 0..n {
        // Names out of id order, and with mixed case, so sorted and natural orders differ.
        out.push(
            create_user(
                backend,
                src,
                &format!("{}user{i:02}@example.com", ["Z", "a", "M"][i % 3]),
            )
            .await,
        );
    }
    out
}

/// Index paging returns the `count` results from 1-based `startIndex` of the ordered matches, `totalResults` counts all of them, and a page past the end is empty.
pub async fn index_paging_slices_the_ordered_results(backend: &dyn Backend) {
    let src = source("index_paging");
    seed_users(backend, &src, 7).await;
    let all = corpus(backend, &src, ResourceKind::User).await;
    let sorts: Vec<Option<Sort>> = if backend.capabilities().sort {
        vec![None, Some(sort(ResourceKind::User, "userName", false))]
    } else {
        vec![None]
    };
    for s in &sorts {
        let full = reference(&all, s.as_ref(), &all_at_once(backend));
        let full_ids = ids(&full.resources);
        let got_full = page_of(backend, &src, s.as_ref(), all_at_once(backend)).await;
        assert_eq!(
            ids(&got_full.resources),
            full_ids,
            "the whole result in order ({s:?})"
        );
        for (start, count) in [
            (1, 3),
            (4, 3),
            (7, 3),
            (8, 3),
            (100, 3),
            (1, 0),
            (5, 0),
            (2, 1),
            (6, 5),
            (1, 7),
            (1, 100),
        ] {
            let page = Page::Index {
                start_index: start,
                count,
            };
            let got = page_of(backend, &src, s.as_ref(), page.clone()).await;
            let from = (start as usize - 1).min(full_ids.len());
            let to = (from + count as usize).min(full_ids.len());
            assert_eq!(
                ids(&got.resources),
                full_ids[from..to].to_vec(),
                "startIndex={start} count={count} sort={s:?}"
            );
            assert_eq!(
                got.total_results, 7,
                "totalResults at startIndex={start} count={count}"
            );
            let want = reference(&all, s.as_ref(), &page);
            assert_eq!(ids(&got.resources), ids(&want.resources));
        }
    }
    // The pages of a walk cover every resource exactly once.
    let mut walked = Vec::new();
    let mut start = 1;
    while start <= 7 {
        let got = page_of(
            backend,
            &src,
            None,
            Page::Index {
                start_index: start,
                count: 2,
            },
        )
        .await;
        walked.extend(ids(&got.resources));
        start += 2;
    }
    let mut expected = ids(&all);
    expected.sort();
    walked.sort();
    assert_eq!(walked, expected);
}

/// Walks forward with cursors from the first page; returns the pages.
async fn walk_forward(
    backend: &dyn Backend,
    src: &str,
    sort: Option<&Sort>,
    count: u64,
) -> Vec<QueryPage> {
    let mut pages = Vec::new();
    let mut position: Option<CursorPosition> = None;
    loop {
        let page = page_of(
            backend,
            src,
            sort,
            Page::Cursor {
                position: position.clone(),
                count,
            },
        )
        .await;
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(n) => position = Some(n),
            None => break,
        }
        assert!(pages.len() <= 100, "the cursor walk does not end");
    }
    pages
}

/// Following `next` cursors from the first page visits every resource exactly once, in order, in pages of at most `count`; the first page has no previous cursor and the last no next.
pub async fn cursor_paging_visits_every_resource_once(backend: &dyn Backend) {
    if !has(
        "cursor_forward",
        "cursor paging",
        backend.capabilities().cursor_paging,
    ) {
        return;
    }
    let src = source("cursor_forward");
    seed_users(backend, &src, 10).await;
    let all = corpus(backend, &src, ResourceKind::User).await;
    let mut sorts = vec![None];
    if backend.capabilities().sort {
        sorts.push(Some(sort(ResourceKind::User, "userName", true)));
        sorts.push(Some(sort(ResourceKind::User, "title", false)));
    }
    for s in &sorts {
        let full = ids(&reference(&all, s.as_ref(), &all_at_once(backend)).resources);
        for count in [3u64, 5, 10, 11] {
            let pages = walk_forward(backend, &src, s.as_ref(), count).await;
            let visited: Vec<String> = pages.iter().flat_map(|p| ids(&p.resources)).collect();
            assert_eq!(visited, full, "forward walk with count={count}, sort={s:?}");
            assert_eq!(
                pages.len(),
                10usize.div_ceil(count as usize),
                "pages for count={count}"
            );
            for p in &pages {
                assert!(p.resources.len() as u64 <= count);
                assert_eq!(p.total_results, 10);
            }
            assert_eq!(
                pages[0].previous, None,
                "the first page has no previous cursor"
            );
            assert_eq!(pages.last().and_then(|p| p.next.clone()), None);
        }
    }
}

/// Following `previous` cursors from the last page walks back through the same pages to the first.
pub async fn cursor_paging_walks_backward(backend: &dyn Backend) {
    if !has(
        "cursor_backward",
        "cursor paging",
        backend.capabilities().cursor_paging,
    ) {
        return;
    }
    let src = source("cursor_backward");
    seed_users(backend, &src, 10).await;
    let mut sorts = vec![None];
    if backend.capabilities().sort {
        sorts.push(Some(sort(ResourceKind::User, "userName", false)));
    }
    for s in &sorts {
        let forward = walk_forward(backend, &src, s.as_ref(), 3).await;
        let mut back = vec![forward.last().cloned().unwrap_or_default()];
        while let Some(prev) = back.last().and_then(|p| p.previous.clone()) {
            assert!(prev.backward, "a previous cursor continues backward");
            let page = page_of(
                backend,
                &src,
                s.as_ref(),
                Page::Cursor {
                    position: Some(prev),
                    count: 3,
                },
            )
            .await;
            assert!(
                page.next.is_some(),
                "a page reached backward has a next page"
            );
            back.push(page);
            assert!(
                back.len() <= forward.len(),
                "the backward walk passes the first page"
            );
        }
        back.reverse();
        let fwd: Vec<Vec<String>> = forward.iter().map(|p| ids(&p.resources)).collect();
        let bwd: Vec<Vec<String>> = back.iter().map(|p| ids(&p.resources)).collect();
        assert_eq!(bwd, fwd, "backward pages equal forward pages (sort={s:?})");
    }
}

/// A filtered query's index pages and totals cover only the matches.
pub async fn paging_counts_only_matches(backend: &dyn Backend) {
    if !has("paging_filtered", "filter", backend.capabilities().filter) {
        return;
    }
    let src = source("paging_filtered");
    let users = seed_users(backend, &src, 9).await;
    // Names starting with "a" (case-insensitively): every third user.
    let f = filter(ResourceKind::User, r#"userName sw "A""#);
    let mut seen = Vec::new();
    for start in [1u64, 3] {
        let got = run_query(
            backend,
            &src,
            ResourceKind::User,
            Some(f.clone()),
            None,
            Page::Index {
                start_index: start,
                count: 2,
            },
            Load::ALL,
        )
        .await;
        assert_eq!(got.total_results, 3);
        seen.extend(ids(&got.resources));
    }
    seen.sort();
    let mut want: Vec<String> = users
        .iter()
        .filter(|u| str_attr(u, "userName").is_some_and(|n| n.starts_with('a')))
        .map(|u| u.id.clone())
        .collect();
    want.sort();
    assert_eq!(seen, want);
}
