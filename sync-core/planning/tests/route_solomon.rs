//! Solomon VRPTW: parser, feasibility checker, solver on small slices of the benchmark.

#[path = "support/solomon.rs"]
mod solomon;

// In a module so that `cargo test -p fieldsync-planning route` selects these tests.
mod route_solomon {
    use super::solomon::{self, Instance, Node, Objective, Solution, SolveOptions};
    use fieldsync_planning::route::RouteError;
    use proptest::prelude::*;

    /// The depot and the first 25 customers of C101.txt (shared/data/solomon), with its trailing spaces.
    const C101_25: &str = "200
        0      40      50       0       0    1236       0
        1      55      85      20     647     726      90                 
        2      45      68      10     912     967      90
        3      45      70      30     825     870      90
        4      42      66      10      65     146      90
        5      42      68      10     727     782      90
        6      42      65      10      15      67      90
        7      40      69      20     621     702      90
        8      40      66      20     170     225      90
        9      38      68      20     255     324      90
       10      38      70      10     534     605      90
       11      35      66      10     357     410      90
       12      35      69      10     448     505      90
       13      25      85      20     652     721      90
       14      22      75      30      30      92      90
       15      22      85      10     567     620      90
       16      20      80      40     384     429      90
       17      20      85      40     475     528      90
       18      18      75      20      99     148      90
       19      15      75      20     179     254      90
       20      15      80      10     278     345      90
       21      30      50      10      10      73      90
       22      30      52      20     914     965      90
       23      28      52      20     812     883      90
       24      28      55      10     732     777      90
       25      25      50      10      65     144      90
    ";

    /// The depot and the first 25 customers of R101.txt.
    const R101_25: &str = "200
        0      35      35       0       0     230       0
        1      18      18      17     185     195      10
        2      41      49      10     161     171      10
        3      35      17       7      50      60      10
        4      55      45      13     116     126      10
        5      55      20      19     149     159      10
        6      15      30      26      34      44      10
        7      25      30       3      99     109      10
        8      20      50       5      81      91      10
        9      10      43       9      95     105      10
       10      55      60      16      97     107      10
       11      30      60      16     124     134      10
       12      20      65      12      67      77      10
       13      50      35      19      63      73      10
       14      30      25      23     159     169      10
       15      15      10      20      32      42      10
       16      30       5       8      61      71      10
       17      10      20      19      75      85      10
       18       5      30       2     157     167      10
       19      20      40      12      87      97      10
       20      15      60      17      76      86      10
       21      45      65       9     126     136      10
       22      45      20      11      62      72      10
       23      45      10      18      97     107      10
       24      55       5      29      68      78      10
       25      65      35       3     153     163      10
    ";

    fn c101() -> Instance {
        solomon::parse(C101_25).expect("C101 slice parses")
    }

    fn quick(seed: u64) -> SolveOptions {
        // An iteration budget, no time limit: the same answer on a loaded machine.
        SolveOptions { max_iterations: 3_000, ..SolveOptions::new(seed, 0) }
    }

    fn solution(inst: &Instance, routes: Vec<Vec<usize>>) -> Solution {
        Solution {
            vehicles: routes.len(),
            distance: solomon::distance(inst, &routes),
            routes,
            unserved: vec![],
        }
    }

    #[test]
    fn the_parser_reads_capacity_depot_and_customers() {
        let inst = c101();
        assert_eq!(inst.capacity, 200);
        assert_eq!(inst.customers(), 25);
        let depot = &inst.nodes[0];
        assert_eq!((depot.x, depot.y, depot.due), (40.0, 50.0, 1236.0));
        let first = &inst.nodes[1];
        assert_eq!(
            (first.id, first.x, first.y, first.demand, first.ready, first.due, first.service),
            (1, 55.0, 85.0, 20, 647.0, 726.0, 90.0)
        );
    }

    #[test]
    fn the_parser_reports_the_line_of_a_bad_row() {
        let text = "200\n0 40 50 0 0 1236 0\n1 55 85 20 647 726\n";
        assert!(matches!(solomon::parse(text), Err(RouteError::Parse { line: 3, .. })));
        let text = "200\n0 40 50 0 0 1236 0\n2 55 85 20 647 726 90\n";
        assert!(matches!(solomon::parse(text), Err(RouteError::Parse { line: 3, .. })));
        let text = "200\n0 40 50 0 0 1236 x\n";
        assert!(matches!(solomon::parse(text), Err(RouteError::Parse { line: 2, .. })));
        assert!(matches!(solomon::parse(""), Err(RouteError::Parse { .. })));
        assert!(matches!(solomon::parse("capacity\n"), Err(RouteError::Parse { line: 1, .. })));
        assert!(matches!(solomon::parse("200\n"), Err(RouteError::Parse { .. })));
        assert!(matches!(solomon::parse("200\n0 NaN 50 0 0 1236 0\n"), Err(RouteError::Parse { .. })));
    }

    #[test]
    fn the_checker_accepts_one_vehicle_per_customer() {
        let inst = c101();
        let sol = solution(&inst, (1..=25).map(|c| vec![c]).collect());
        assert_eq!(solomon::check(&inst, &sol), Ok(()));
    }

    #[test]
    fn the_checker_rejects_an_infeasible_hand_made_solution() {
        let inst = c101();
        let base: Vec<Vec<usize>> = (1..=25).map(|c| vec![c]).collect();

        // Customer 6 (due 67) after customer 4 (ready 65, 90 service): too late.
        let mut late = base.clone();
        late.retain(|r| r[0] != 4 && r[0] != 6);
        late.push(vec![4, 6]);
        let err = solomon::check(&inst, &solution(&inst, late)).expect_err("late");
        assert!(err.contains("customer 6"), "{err}");

        // A customer missing, one twice, one unknown, the depot as a customer.
        let missing: Vec<Vec<usize>> = base[1..].to_vec();
        assert!(
            solomon::check(&inst, &solution(&inst, missing)).expect_err("missing").contains("not served")
        );
        let mut twice = base.clone();
        twice.push(vec![1]);
        assert!(solomon::check(&inst, &solution(&inst, twice)).expect_err("twice").contains("twice"));
        let mut unknown = base.clone();
        unknown.push(vec![26]);
        assert!(solomon::check(&inst, &solution(&inst, unknown)).is_err());
        let mut depot = base.clone();
        depot[0].push(0);
        assert!(solomon::check(&inst, &solution(&inst, depot)).is_err());

        // Over capacity: all 25 customers (460 units) in one truck of 200, whatever the times.
        let heavy = vec![(1..=25).collect::<Vec<usize>>()];
        assert!(solomon::check(&inst, &solution(&inst, heavy)).is_err());
        let mut small = inst.clone();
        small.capacity = 10;
        let err = solomon::check(&small, &solution(&small, base.clone())).expect_err("capacity");
        assert!(err.contains("capacity"), "{err}");

        // Back at the depot too late.
        let mut short = inst.clone();
        short.nodes[0].due = 100.0;
        assert!(
            solomon::check(&short, &solution(&short, base.clone())).expect_err("depot").contains("depot")
        );

        // The stated totals must be the routes'.
        let mut wrong = solution(&inst, base.clone());
        wrong.distance -= 1.0;
        assert!(solomon::check(&inst, &wrong).expect_err("distance").contains("distance"));
        let mut wrong = solution(&inst, base);
        wrong.vehicles -= 1;
        assert!(solomon::check(&inst, &wrong).is_err());
        let empty = Solution { vehicles: 1, distance: 0.0, routes: vec![vec![]], unserved: vec![] };
        assert!(solomon::check(&inst, &empty).is_err());
    }

    #[test]
    fn a_solve_of_the_first_25_customers_of_c101_is_feasible() {
        let inst = c101();
        let sol = solomon::solve_with(&inst, &quick(7));
        assert_eq!(solomon::check(&inst, &sol), Ok(()));
        assert!(sol.unserved.is_empty());
        // Demand 460 with trucks of 200: at least 3; the one-customer-per-truck start had 25.
        assert!((3..=5).contains(&sol.vehicles), "{sol:?}");
    }

    #[test]
    fn a_solve_of_the_first_25_customers_of_r101_is_feasible_under_both_objectives() {
        let inst = solomon::parse(R101_25).expect("R101 slice parses");
        let hier = solomon::solve_with(&inst, &quick(3));
        assert_eq!(solomon::check(&inst, &hier), Ok(()));
        let dist = solomon::solve_with(&inst, &SolveOptions { objective: Objective::Distance, ..quick(3) });
        assert_eq!(solomon::check(&inst, &dist), Ok(()));
        assert!(hier.vehicles <= 25 && dist.vehicles <= 25);
    }

    #[test]
    fn the_solver_is_deterministic_for_a_seed_without_a_time_limit() {
        let inst = c101();
        let opts = SolveOptions { max_iterations: 500, ..SolveOptions::new(11, 0) };
        assert_eq!(solomon::solve_with(&inst, &opts), solomon::solve_with(&inst, &opts));
    }

    #[test]
    fn a_customer_nobody_can_reach_is_reported_unserved_not_a_panic() {
        let mut inst = c101();
        inst.nodes[3].due = 1.0; // 35 units away from the depot
        inst.nodes[5].ready = 900.0;
        inst.nodes[5].due = 10.0; // window ends before it starts
        let sol = solomon::solve_with(&inst, &quick(1));
        assert_eq!(sol.unserved, vec![3, 5]);
        assert!(solomon::check(&inst, &sol).is_err());
        let one = solomon::parse("10\n0 0 0 0 0 100 0\n").expect("depot only");
        let sol = solomon::solve(&one, 1, 10);
        assert_eq!((sol.vehicles, sol.distance), (0, 0.0));
        assert_eq!(solomon::check(&one, &sol), Ok(()));
    }

    /// Random instances in which every customer can be served by a truck of its own.
    fn arb_instance() -> impl Strategy<Value = Instance> {
        prop::collection::vec(
            (0.0f64..50.0, 0.0f64..50.0, 1i64..30, 0.0f64..1.0, 1.0f64..80.0, 0.0f64..15.0),
            1..12,
        )
        .prop_map(|rows| {
            let horizon = 400.0;
            let mut nodes =
                vec![Node { id: 0, x: 25.0, y: 25.0, demand: 0, ready: 0.0, due: horizon, service: 0.0 }];
            for (k, (x, y, demand, start, width, service)) in rows.into_iter().enumerate() {
                let d = ((x - 25.0f64).powi(2) + (y - 25.0f64).powi(2)).sqrt();
                let latest = horizon - 2.0 * d - service - 1.0;
                let ready = (d + start * (latest - d).max(0.0)).floor();
                nodes.push(Node { id: k + 1, x, y, demand, ready, due: ready + width, service });
            }
            Instance { capacity: 60, nodes }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn solutions_of_random_small_instances_pass_the_checker(inst in arb_instance(), seed in any::<u64>(), distance in any::<bool>()) {
            let objective = if distance { Objective::Distance } else { Objective::VehiclesThenDistance };
            let opts = SolveOptions { max_iterations: 300, objective, ..SolveOptions::new(seed, 0) };
            let sol = solomon::solve_with(&inst, &opts);
            prop_assert!(sol.unserved.is_empty(), "{:?}", sol);
            prop_assert_eq!(solomon::check(&inst, &sol), Ok(()));
        }
    }
}
