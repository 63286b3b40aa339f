"""What next: the decision of a reconcile pass, the status it renders, worker health and leadership."""
